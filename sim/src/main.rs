//! podsim: a fake Kubernetes cluster whose pods are real shells. It speaks the PlainTTY web
//! terminal protocol and the Kubernetes API subset kubectl uses (discovery, pods, exec over
//! WebSocket), over https/wss with a throwaway CA unless `--plain-http`, checks bearer tokens and
//! client certificates, and injects faults on demand. Test peer, benchmark target and demo.

mod auth;
mod cluster;
mod files;
mod k8s;
mod kubeconfig;
mod pki;
mod pty;
mod selector;
mod server;
mod session;
mod shell;
mod state;
mod stats;
mod tls;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use argh::FromArgs;
use serde_json::json;

use crate::state::State;

/// A fake Kubernetes cluster of real shells.
#[derive(FromArgs)]
struct Args {
    /// address to listen on (default 127.0.0.1:0, a free port)
    #[argh(option, default = "String::from(\"127.0.0.1:0\")")]
    listen: String,
    /// number of pods (default 3)
    #[argh(option, default = "3")]
    pods: usize,
    /// namespace of the pods (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    namespace: String,
    /// bearer token clients must present (default: a random one, printed in the ready line)
    #[argh(option)]
    token: Option<String>,
    /// serve plain http/ws instead of https/wss; tokens then travel in clear text, so only on a
    /// loopback --listen address
    #[argh(switch)]
    plain_http: bool,
    /// does nothing: https/wss is the default (kept so older scripts still start podsim)
    #[argh(switch, hidden_help)]
    tls: bool,
    /// write a kubeconfig for this cluster to FILE (mode 0600): the CA and the token user as the
    /// current context, and a "podsim-cert" context using the client certificate
    #[argh(option)]
    kubeconfig_out: Option<PathBuf>,
    /// write ca.crt, client.crt and client.key (mode 0600) of podsim's throwaway CA into DIR
    #[argh(option)]
    pki_out: Option<PathBuf>,
    /// close a connection after SECS without a data frame either way, as the kubelet's
    /// --streaming-connection-idle-timeout does (WebSocket pings do not count; default: never)
    #[argh(option)]
    idle_timeout: Option<f64>,
    /// speak only v4.channel.k8s.io on exec, as API servers before Kubernetes 1.30 do (no way
    /// to close a process's stdin)
    #[argh(switch)]
    exec_v4_only: bool,
    /// how long a deleted pod stays Terminating, its shells still running, before they are
    /// killed and it is gone (default 1; a delete may ask for less)
    #[argh(option, default = "1.0")]
    termination_grace: f64,
    /// how many pod events a watch can resume from; an older resourceVersion gets 410 Gone, as
    /// from the API server's watch cache (default 50000)
    #[argh(option, default = "50_000")]
    watch_cache_size: usize,
    /// app label and pod name prefix (default "web")
    #[argh(option, default = "String::from(\"web\")")]
    app: String,
    /// directory holding each pod's home directory (default: a temporary directory)
    #[argh(option)]
    workdir: Option<PathBuf>,
    /// exit (killing every shell) when stdin reaches end-of-file
    #[argh(switch)]
    exit_on_stdin_close: bool,
    /// log debug details to stderr (RUST_LOG also works)
    #[argh(switch)]
    verbose: bool,
}

fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ if verbose => EnvFilter::new("podsim=debug"),
        _ => EnvFilter::new("off"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 52
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    init_logging(args.verbose);
    // Each live connection holds a socket and a PTY or pipes.
    if let Err(e) = podwrangler::session::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    if !valid_dns_label(&args.app) {
        bail!(
            "--app {:?} is not a valid DNS label (lowercase letters, digits, '-')",
            args.app
        );
    }
    if !valid_dns_label(&args.namespace) {
        bail!("--namespace {:?} is not a valid DNS label", args.namespace);
    }
    let token = args.token.clone().unwrap_or_else(random_token);
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("--token must be non-empty and contain no whitespace");
    }
    if args.plain_http && args.tls {
        bail!("--tls and --plain-http contradict each other (TLS is the default)");
    }
    if args.plain_http && args.pki_out.is_some() {
        bail!("--pki-out needs TLS: there is no CA with --plain-http");
    }
    let tls_on = !args.plain_http;

    // Keep the temporary directory alive for the whole run; it is removed on a clean exit.
    let (workdir, _tempdir) = match &args.workdir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating --workdir {}", d.display()))?;
            (d.canonicalize()?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("podsim-")
                .tempdir()
                .context("creating a temporary work directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr()?.to_string();
    let host = listener.local_addr()?.ip().to_string();
    // Tokens never cross a network in clear text: plain HTTP is for loopback only.
    if args.plain_http && !listener.local_addr()?.ip().is_loopback() {
        bail!(
            "--plain-http needs a loopback --listen address (tokens would travel in clear text), not {address}"
        );
    }
    let pki = tls_on.then(|| pki::Pki::generate(&host)).transpose()?;
    let acceptor = pki.as_ref().map(tls::acceptor).transpose()?;
    if let (Some(dir), Some(pki)) = (&args.pki_out, &pki) {
        pki.write_to(dir)?;
    }
    // With TLS the admin endpoints also get a plain-HTTP port, so std-only test helpers can
    // inject faults without a TLS stack.
    let admin_listener = match tls_on {
        true => Some(
            tokio::net::TcpListener::bind((listener.local_addr()?.ip(), 0))
                .await
                .context("binding the admin port")?,
        ),
        false => None,
    };
    let admin_address = match &admin_listener {
        Some(l) => l.local_addr()?.to_string(),
        None => address.clone(),
    };
    let (http, ws) = if tls_on {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let http_base = format!("{http}://{address}");
    let ws_base = format!("{ws}://{address}");

    if !(args.termination_grace >= 0.0 && args.termination_grace < 86_400.0) {
        bail!("--termination-grace must be between 0 and 86400 seconds");
    }
    let cluster = Arc::new(cluster::Cluster::new(
        &args.app,
        args.pods,
        workdir.clone(),
        std::time::Duration::from_secs_f64(args.termination_grace),
        args.watch_cache_size,
    ));

    if let Some(path) = &args.kubeconfig_out {
        let text = kubeconfig::render(&http_base, &token, &args.namespace, pki.as_ref());
        // It holds the token and the client key.
        files::write_file(path, &text, 0o600)?;
    }
    let state = Arc::new(State {
        namespace: args.namespace.clone(),
        token: token.clone(),
        app: args.app.clone(),
        tls: tls_on,
        workdir,
        address: address.clone(),
        cluster,
        started: chrono::Utc::now(),
        idle_timeout: args
            .idle_timeout
            .filter(|s| *s > 0.0)
            .map(std::time::Duration::from_secs_f64),
        exec_v4_only: args.exec_v4_only,
    });

    let ready = json!({
        "address": address,
        "http_base": http_base,
        "ws_base": ws_base,
        "namespace": state.namespace,
        "token": token,
        "tls": state.tls,
        "admin_address": admin_address,
        "workdir": state.workdir.display().to_string(),
        "ca_cert_pem": pki.as_ref().map(|p| &p.ca_cert_pem),
        "client_cert_pem": pki.as_ref().map(|p| &p.client_cert_pem),
        "client_key_pem": pki.as_ref().map(|p| &p.client_key_pem),
        "kubeconfig": args.kubeconfig_out.as_ref().map(|p| p.display().to_string()),
        "pods": state.cluster.pods().iter().map(|p| json!({
            "name": p.name,
            "namespace": state.namespace,
            "plaintty_url": format!("{ws_base}/exec/{}-5d8f7/?token={token}&cols=220&pod={}", state.app, p.name),
            "exec_path": format!("/api/v1/namespaces/{}/pods/{}/exec", state.namespace, p.name),
        })).collect::<Vec<_>>(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }

    let (stop_tx, mut stop_rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    if args.exit_on_stdin_close {
        let tx = stop_tx.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.blocking_send("stdin closed");
        });
    }
    let server = tokio::spawn(server::serve(listener, state.clone(), acceptor, false));
    let admin_server =
        admin_listener.map(|l| tokio::spawn(server::serve(l, state.clone(), None, true)));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let reason = tokio::select! {
        r = stop_rx.recv() => r.unwrap_or("stop channel closed"),
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    tracing::info!(reason, "shutting down");
    server.abort();
    if let Some(a) = admin_server {
        a.abort();
    }
    for pgid in state.all_pgids() {
        shell::kill_group(pgid);
    }
    Ok(())
}
