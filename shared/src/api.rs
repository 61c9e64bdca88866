//! The REST API's wire types, shared by `podwranglerd` (which serves them) and `pwctl` (which
//! reads them), so the format is defined once. Request bodies reject unknown fields.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::models::{PodIdentity, ProviderKind};
use crate::secret::Secret;

/// Path prefix of every versioned endpoint.
pub const API_PREFIX: &str = "/api/v1";
/// Media type of streamed fan-out results: one JSON [`CommandRecord`] per line.
pub const NDJSON: &str = "application/x-ndjson";
/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `POST /api/v1/pods/`: register a pod from a provider URL, or from fields. Kubernetes pods
/// name a configured `cluster`, or bring their own credentials (`token`, or `client_certificate`
/// with `client_key`); the API takes no kubeconfig path.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PodCreate {
    /// Unique name for the pod: letters, digits, `.`, `_`, `-`; at most 128 characters.
    pub alias: String,
    pub provider: ProviderKind,
    /// A provider URL: PlainTTY `wss://HOST/exec/{service_id}/?token=JWT&cols=220&pod=POD`, or a
    /// Kubernetes exec URL `https://SERVER/api/v1/namespaces/NS/pods/POD/exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Token; overrides one carried in `url`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// PlainTTY service id (the `{service_id}` path segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// PlainTTY base URL (`wss://host[:port]`) or Kubernetes API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// `PATCH /api/v1/pods/{alias}`: change connection details or tags; the pod reconnects.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PodUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Replaces the pod's tags when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The live state of a pod's session, as its actor reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PodState {
    /// Not connected yet (connects on first use).
    Idle,
    /// Waiting for a free connection slot (the daemon bounds concurrent connection attempts).
    Waiting,
    Connecting,
    Ready,
    /// Running a command; `queued` more wait behind it.
    Busy {
        queued: usize,
    },
    /// Waiting to reconnect after a drop.
    BackingOff {
        attempt: u32,
        next_retry_at: DateTime<Utc>,
        last_error: String,
    },
    /// Gave up reconnecting; the next command tries again.
    Failed {
        last_error: String,
    },
}

impl PodState {
    /// The state's name (`ready`, `backing_off`, ...), as `/health` counts them.
    pub fn name(&self) -> &'static str {
        match self {
            PodState::Idle => "idle",
            PodState::Waiting => "waiting",
            PodState::Connecting => "connecting",
            PodState::Ready => "ready",
            PodState::Busy { .. } => "busy",
            PodState::BackingOff { .. } => "backing_off",
            PodState::Failed { .. } => "failed",
        }
    }
}

/// A registered pod as the API shows it. There is no token field, only whether one is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodInfo {
    pub alias: String,
    pub provider: ProviderKind,
    pub identity: PodIdentity,
    /// Where the pod is reached, with credentials redacted.
    pub target: String,
    pub has_token: bool,
    pub tags: Vec<String>,
    pub state: PodState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/pods/{alias}/exec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: String,
    /// Seconds; the daemon's default (30) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Answer `422 command_failed` (with the record) when the exit code is not 0.
    #[serde(default)]
    pub check: bool,
}

/// `POST /api/v1/exec`: one command to many pods. Exactly one of `aliases`, `tag`, `all`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FanOutRequest {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// How many pods run at once; the daemon's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

/// Where a history row stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Started, not finished yet.
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished with a non-zero exit code.
    Failed,
    /// Ran past its timeout.
    Timeout,
    /// Could not run or lost its connection (see `error`).
    Error,
    /// The daemon stopped (or crashed) before the command finished.
    Interrupted,
    /// Cancelled by a caller (`POST /api/v1/commands/{id}/cancel`, Ctrl-C in pwctl).
    Cancelled,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Running => "running",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Timeout => "timeout",
            CommandStatus::Error => "error",
            CommandStatus::Interrupted => "interrupted",
            CommandStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for CommandStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "running" => CommandStatus::Running,
            "succeeded" => CommandStatus::Succeeded,
            "failed" => CommandStatus::Failed,
            "timeout" => CommandStatus::Timeout,
            "error" => CommandStatus::Error,
            "interrupted" => CommandStatus::Interrupted,
            "cancelled" => CommandStatus::Cancelled,
            other => {
                return Err(format!(
                    "unknown status {other:?} (expected running, succeeded, failed, timeout, error or interrupted)"
                ));
            }
        })
    }
}

/// One execution as history keeps it; also the answer to an exec and each fan-out result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandRecord {
    pub id: i64,
    pub alias: String,
    pub pod_label: String,
    pub command: String,
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub truncated: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    /// Who asked: `unix:UID(NAME)` over the socket, `key:NAME` over TCP, `config` for the
    /// daemon's own configuration. Absent on rows written before actors were recorded.
    #[serde(default)]
    pub actor: Option<String>,
    /// True when the command ran in a new shell (the previous one exited or its connection
    /// dropped, so `cd`/`export` state was lost), or ended the shell itself.
    #[serde(default)]
    pub session_restarted: bool,
    /// Set when history could not record this result in the database: why, and whether the
    /// daemon's spool keeps it until the database takes writes again (then it is recorded with
    /// a new id; `id` is 0 when even the start could not be recorded). Absent when the row is
    /// committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

/// One event of a streamed exec (`Accept: application/x-ndjson`), one JSON object per line:
/// `started` once the history row exists, `stdout`/`stderr` as output arrives (stderr apart
/// where the provider keeps it apart), then `finished` with the record, or `error` when the
/// command could not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ExecEvent {
    Started {
        id: i64,
        alias: String,
    },
    /// Output as it arrived (invalid UTF-8 replaced); not capped like the record's copy.
    Stdout {
        alias: String,
        data: String,
    },
    Stderr {
        alias: String,
        data: String,
    },
    Finished {
        record: Box<CommandRecord>,
    },
    Error {
        problem: Box<Problem>,
    },
}

/// `POST /api/v1/exec` answer (without NDJSON streaming).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FanOutResponse {
    pub results: Vec<CommandRecord>,
    pub succeeded: usize,
    pub failed: usize,
    pub duration_ms: f64,
}

/// `GET /api/v1/commands` answer: newest first; pass `next_cursor` back as `cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandPage {
    pub items: Vec<CommandRecord>,
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/pods/import`: list pods through the Kubernetes API and register them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub token: Option<Secret>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    /// Aliases become `{alias_prefix}{pod name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// `POST /api/v1/pods/import` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportResponse {
    pub registered: Vec<String>,
    /// Pods whose alias was already taken.
    pub skipped: Vec<String>,
}

/// `GET /api/v1/clusters`: one cluster the daemon's configuration names. Credentials are
/// never shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterInfo {
    pub name: String,
    /// Where the credentials come from: `kubeconfig` or `token_file`.
    pub source: String,
}

/// What an audit event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    PodRegistered,
    PodUpdated,
    PodRemoved,
    PodsImported,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::PodRegistered => "pod_registered",
            AuditAction::PodUpdated => "pod_updated",
            AuditAction::PodRemoved => "pod_removed",
            AuditAction::PodsImported => "pods_imported",
        }
    }
}

impl std::str::FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pod_registered" => AuditAction::PodRegistered,
            "pod_updated" => AuditAction::PodUpdated,
            "pod_removed" => AuditAction::PodRemoved,
            "pods_imported" => AuditAction::PodsImported,
            other => return Err(format!("unknown audit action {other:?}")),
        })
    }
}

/// One change to the registered pods, with who made it and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Same form as [`CommandRecord::actor`].
    pub actor: String,
    pub action: AuditAction,
    /// The pod concerned (for imports, the namespace imported).
    pub subject: String,
    /// What changed, without credentials.
    pub detail: String,
}

/// `GET /api/v1/audit` answer: newest first; pass `next_cursor` back as `cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer, refuses writes, or history waits
    /// in the spool.
    pub status: String,
    pub version: String,
    pub uptime_secs: f64,
    pub database: DatabaseHealth,
    /// Number of pods in each state (`ready`, `idle`, `backing_off`, ...).
    pub pods: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseHealth {
    /// False when the database does not answer or its last write failed.
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// History writes waiting in the spool to be replayed into the database.
    #[serde(default)]
    pub spool_pending: usize,
    /// The last database failure, while `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An `application/problem+json` error body (RFC 9457) with a stable `code`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable: `pod_not_found`, `pod_exists`, `pod_connection`, `pod_busy`, `command_timeout`,
    /// `command_failed`, `validation`, `unauthorized`, `forbidden`, `not_found`,
    /// `database_unavailable`, `internal`, ...
    pub code: String,
    /// The request field at fault, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The history record, for `command_failed` and `command_timeout`; for
    /// `database_unavailable`, a result that ran but that neither the database nor the spool
    /// could keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<CommandRecord>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_reject_unknown_fields() {
        let err = serde_json::from_str::<ExecRequest>(r#"{"command":"ls","bogus":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn pod_create_carries_the_real_token_to_the_daemon() {
        let body = PodCreate {
            alias: "web".into(),
            provider: ProviderKind::PlainTty,
            token: Some(Secret::new("tok-123")),
            ..Default::default()
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("tok-123"), "{json}");
        assert!(!format!("{body:?}").contains("tok-123"));
    }

    #[test]
    fn pod_state_is_tagged() {
        let json = serde_json::to_value(PodState::Busy { queued: 2 }).unwrap();
        assert_eq!(json["state"], "busy");
        assert_eq!(json["queued"], 2);
    }
}
