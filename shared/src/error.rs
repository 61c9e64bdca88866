//! The one error type of the library, covering every failure the seed had an exception for.

use std::time::Duration;

use crate::models::CommandResult;

/// Everything that can go wrong talking to pods. Messages never contain secrets: targets and
/// URLs are redacted before they are put in an error.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The alias is not in the registry.
    #[error("no pod named {alias:?}")]
    NotFound { alias: String },

    /// Connecting (TCP, TLS, WebSocket upgrade, shell init) failed.
    #[error("cannot connect to {target}: {reason}")]
    Connection { target: String, reason: String },

    /// The session is closed, or the connection dropped and auto-reconnect is off.
    #[error("session to {pod} is not connected")]
    NotConnected { pod: String },

    /// The connection dropped while a command ran. The command is not re-run: it may have run.
    #[error("connection to {pod} lost while the command ran: {reason}")]
    ConnectionLost {
        pod: String,
        reason: String,
        partial: Box<CommandResult>,
    },

    /// A command exited non-zero and the caller asked for `check`.
    #[error("command exited with code {exit_code}")]
    CommandFailed {
        exit_code: i32,
        result: Box<CommandResult>,
    },

    /// A command was cancelled while it ran; `partial` holds what it printed until then.
    #[error("command cancelled")]
    Cancelled { partial: Box<CommandResult> },

    /// A command ran longer than its timeout; `partial` holds what it printed until then.
    #[error("command timed out after {:.1}s", timeout.as_secs_f64())]
    Timeout {
        timeout: Duration,
        partial: Box<CommandResult>,
    },

    /// A configuration value is not acceptable.
    #[error("invalid {field}: {reason}")]
    ConfigValidation { field: String, reason: String },

    /// A URL does not match the provider's scheme. `url` is already redacted.
    #[error("cannot parse URL {url}: {reason}")]
    UrlParse { url: String, reason: String },

    /// The pod's namespace could not be found out.
    #[error("cannot detect the namespace: {0}")]
    NamespaceDetection(String),

    /// The Kubernetes API answered with an error (listing pods, reading a kubeconfig).
    #[error("Kubernetes API: {0}")]
    Kubernetes(String),

    /// The shell broke the protocol (a marker never came, output could not be framed).
    #[error("shell protocol error: {0}")]
    Protocol(String),
}

impl PodError {
    /// The output a command produced before it failed, timed out or lost its connection.
    pub fn partial_result(&self) -> Option<&CommandResult> {
        match self {
            PodError::ConnectionLost { partial, .. }
            | PodError::Timeout { partial, .. }
            | PodError::Cancelled { partial } => Some(partial),
            PodError::CommandFailed { result, .. } => Some(result),
            _ => None,
        }
    }

    /// A stable machine-readable name, used as the `code` of REST problems.
    pub fn code(&self) -> &'static str {
        match self {
            PodError::NotFound { .. } => "pod_not_found",
            PodError::Connection { .. } => "pod_connection",
            PodError::NotConnected { .. } => "pod_not_connected",
            PodError::ConnectionLost { .. } => "pod_connection_lost",
            PodError::CommandFailed { .. } => "command_failed",
            PodError::Timeout { .. } => "command_timeout",
            PodError::Cancelled { .. } => "command_cancelled",
            PodError::ConfigValidation { .. } => "validation",
            PodError::UrlParse { .. } => "url_parse",
            PodError::NamespaceDetection(_) => "namespace_detection",
            PodError::Kubernetes(_) => "kubernetes_api",
            PodError::Protocol(_) => "shell_protocol",
        }
    }
}

pub type Result<T, E = PodError> = std::result::Result<T, E>;
