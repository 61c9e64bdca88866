//! podwranglerd: the PodWrangler daemon (flags, logging, then the server until SIGTERM).

use anyhow::Context as _;
use podwranglerd::config::{Args, Config};
use podwranglerd::{logging, server};

fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    if args.version {
        eprintln!("podwranglerd {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let config = Config::load(&args).context("invalid configuration")?;
    if args.check_config {
        eprintln!("{}\nconfiguration OK", config.summary());
        return Ok(());
    }
    let log = logging::init(&config.log_level, config.log_json);
    tracing::info!(
        mode = ?config.mode,
        config = %config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()),
        database = %podwrangler::redact_url(&config.database_url),
        "starting podwranglerd"
    );
    // Every pod session holds a socket: a thousand pods need more than the usual 1,024.
    match podwrangler::session::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let system = actix_rt::System::new();
    let result = system.block_on(server::serve(config, args, log));
    if let Err(e) = &result {
        tracing::error!(error = %e, "podwranglerd failed");
    }
    result.context("podwranglerd failed")
}
