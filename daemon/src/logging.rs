//! tracing set-up: human or JSON lines on stderr, with a filter SIGHUP can change.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// Libraries that print request lines or headers (with tokens in URLs or `Authorization`) at
/// debug or trace: capped at info whatever the configured filter says.
const SECRET_BEARING_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "kube",
    "kube_client",
    "tower",
    "tower_http",
    "rustls",
    "actix_http",
];

/// The configured filter with the secret-bearing targets capped.
pub fn build_filter(filter: &str) -> Result<EnvFilter, String> {
    let mut f = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for target in SECRET_BEARING_TARGETS {
        f = f.add_directive(
            format!("{target}=info")
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
    }
    Ok(f)
}

/// Changes the log filter of the running daemon.
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogControl {
    /// A control that changes nothing (when logging was set up elsewhere).
    pub fn disabled() -> Self {
        LogControl { handle: None }
    }

    pub fn set_level(&self, filter: &str) -> Result<(), String> {
        let Some(handle) = &self.handle else {
            return Ok(());
        };
        let filter = build_filter(filter)?;
        handle.reload(filter).map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive such as `info`.
pub fn init(filter: &str, json: bool) -> LogControl {
    let filter = build_filter(filter)
        .or_else(|_| build_filter("info"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    match result {
        Ok(()) => LogControl {
            handle: Some(handle),
        },
        Err(_) => LogControl::disabled(),
    }
}
