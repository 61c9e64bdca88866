//! Quickstart: run `hostname` and `cd /tmp && pwd` in one pod through a PlainTTY URL.
//!
//! ```text
//! cargo run -p podwrangler --example quickstart -- 'ws://127.0.0.1:40123/exec/sim/?token=T&cols=220&pod=web-5d8f7-00000'
//! # or pipe podsim's ready line in:  podsim --listen 127.0.0.1:0 --pods 1 --plain-http | cargo run -p podwrangler --example quickstart
//! ```

use std::io::BufRead;

use podwrangler::{PodSession, ProviderKind, RunOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            // podsim prints one JSON line when ready; take the first pod's terminal URL from it.
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let info: serde_json::Value = serde_json::from_str(&line)?;
            info["pods"][0]["plaintty_url"]
                .as_str()
                .ok_or("no pods[0].plaintty_url in the JSON line")?
                .to_owned()
        }
    };

    let session = PodSession::from_url(&url, ProviderKind::PlainTty).await?;
    println!("connected: {session:?}");

    let result = session.run("hostname", RunOptions::default()).await?;
    println!("hostname -> {}", result.stdout.trim());

    // One long-lived shell: the `cd` carries over to the next command.
    session.run("cd /tmp", RunOptions::default()).await?;
    let result = session.run("pwd", RunOptions::default().checked()).await?;
    println!(
        "cd /tmp && pwd -> {} (exit {:?}, {:.1} ms)",
        result.stdout.trim(),
        result.exit_code,
        result.duration_ms
    );

    session.close().await;
    Ok(())
}
