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

/// The limits the daemon enforces on request fields. The OpenAPI document states the same ones
/// (`minLength`, `maxLength`, `pattern`, `minimum`, `maximum`), built from these constants.
pub mod limits {
    /// Longest alias (and tag, cluster name, PlainTTY service id).
    pub const MAX_ALIAS_LEN: usize = 128;
    /// Longest pod set name, so that `SET/POD` fits an alias for pod names up to 64 characters.
    pub const MAX_SET_NAME_LEN: usize = 63;
    /// Longest label selector of a pod set.
    pub const MAX_SELECTOR_LEN: usize = 1024;
    /// Aliases, tags, cluster names and PlainTTY service ids: letters, digits, `.`, `_`, `-`, not
    /// starting with `.` or `-`.
    pub const ALIAS_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9._-]*$";
    /// Kubernetes namespaces and container names are DNS-1123 labels.
    pub const DNS_LABEL_MAX_LEN: usize = 63;
    pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    /// Kubernetes pod names are DNS-1123 subdomains.
    pub const DNS_SUBDOMAIN_MAX_LEN: usize = 253;
    pub const DNS_SUBDOMAIN_PATTERN: &str =
        "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    /// One-line text (URLs, tokens, selectors, filters): no control character at all (Unicode
    /// category Cc: U+0000 to U+001F and U+007F to U+009F).
    pub const SINGLE_LINE_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
    /// Multi-line text (PEM blocks): control characters other than tab, LF and CR are refused.
    pub const MULTI_LINE_PATTERN: &str = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$";
    /// Characters `str::trim` removes (Unicode White_Space) that are not control characters.
    const SPACES: &str = " \u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";
    /// Longest command, in characters. Small enough that any command within it fits the default
    /// body limit (1 MiB) even with every character escaped in JSON (12 bytes for `\uXXXX\uXXXX`),
    /// so a request the schema accepts is never a 413 for its command.
    pub const MAX_COMMAND_LEN: usize = 64 * 1024;
    /// Largest stdin of one command (`POST /pods/{alias}/exec/stdin`), in bytes. It is staged
    /// in the pod's temp directory before the command starts.
    pub const MAX_STDIN_BYTES: u64 = 1 << 30;
    /// Longest command of `POST /pods/{alias}/exec/stdin`, in characters: it travels in the
    /// query string, and a request target longer than 64 KiB is refused by the HTTP layer (every
    /// character may take 12 bytes percent-encoded). Longer commands go as scripts.
    pub const MAX_STDIN_COMMAND_LEN: usize = 4096;
    /// Longest comma-separated alias list in a query string, in bytes (the request target must
    /// stay under 64 KiB); more pods are named by a tag, a set or `all`.
    pub const MAX_ALIAS_LIST_LEN: usize = 4096;
    /// Largest script (`POST /pods/{alias}/exec/script`), in bytes.
    pub const MAX_SCRIPT_BYTES: u64 = 16 << 20;
    /// Largest file copied into pods (`PUT /pods/{alias}/files`, `POST /files`), in bytes.
    pub const MAX_FILE_BYTES: u64 = 4 << 30;
    /// Longest path in a pod, in bytes (a query parameter: with the alias list, the request
    /// target stays under the HTTP layer's 64 KiB however it is percent-encoded).
    pub const MAX_POD_PATH_LEN: usize = 1024;
    /// Terminal width bounds.
    pub const MIN_COLS: u16 = 20;
    pub const MAX_COLS: u16 = 1000;
    /// Fan-out concurrency bounds.
    pub const MAX_CONCURRENCY: usize = 1024;
    /// Largest pod count a fan-out control names (`batch`, `max_failures`, `canary`, `pick`).
    pub const MAX_FANOUT_PODS: usize = 100_000;
    /// `batch`: a wave size, 1 to 100000 pods, or 1% to 100% of the pods.
    pub const BATCH_PATTERN: &str = "^([1-9][0-9]{0,4}|100000|([1-9][0-9]?|100)%)$";
    /// `max_failures`: 0 to 100000 failures, or 0% to 100% of the pods.
    pub const MAX_FAILURES_PATTERN: &str =
        "^([0-9]|[1-9][0-9]{1,4}|100000|([0-9]|[1-9][0-9]|100)%)$";
    /// Page size bounds of the history and the audit log.
    pub const MAX_PAGE_LIMIT: usize = 1000;
    /// Longest `actor` filter, in characters.
    pub const MAX_ACTOR_LEN: usize = 200;
    /// Cursors are the positive id a page's `next_cursor` gave (empty: the first page).
    pub const CURSOR_PATTERN: &str = "^([1-9][0-9]{0,17})?$";
    /// The daemon's default maximum command timeout, in seconds (`max_command_timeout_secs`);
    /// the served document states the configured one.
    pub const DEFAULT_MAX_COMMAND_TIMEOUT_SECS: f64 = 3600.0;

    /// Commands are scripts: newlines, CR and tabs are allowed, other control characters (NUL
    /// first of all) are not, and there must be something other than white space.
    pub fn command_pattern() -> String {
        let text = "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]";
        format!("^{text}*[^\\x00-\\x20\\x7f-\\x9f{SPACES}]{text}*$")
    }

    /// One-line text with something other than white space in it (tokens).
    pub fn non_blank_pattern() -> String {
        let text = "[^\\x00-\\x1f\\x7f-\\x9f]";
        format!("^{text}*[^\\x00-\\x20\\x7f-\\x9f{SPACES}]{text}*$")
    }

    /// Whether `c` is a control character the field kind refuses.
    pub fn refused_control(c: char, multi_line: bool) -> bool {
        c.is_control() && !(multi_line && matches!(c, '\t' | '\n' | '\r'))
    }
}

/// An optional integer that may be written as a number with a zero fraction (`526.0`): JSON
/// Schema's `integer` includes those, so the API does too. Fractions and values out of `T`'s
/// range are errors.
fn integral<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let out_of_range = || D::Error::custom(format!("{n} is out of range"));
    if let Some(u) = n.as_u64() {
        return T::try_from(u).map(Some).map_err(|_| out_of_range());
    }
    if let Some(i) = n.as_i64() {
        return T::try_from(i).map(Some).map_err(|_| out_of_range());
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            T::try_from(f as i64).map(Some).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!(
            "invalid type: {n} is not an integer"
        ))),
    }
}

/// An optional field that, when present, must not be `null`: absent and `null` mean different
/// things to the schema, so they must to the daemon too.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Schemas of constrained fields, built from [`limits`].
#[cfg(feature = "openapi")]
pub mod schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

    use super::limits::*;

    fn string(nullable: bool) -> ObjectBuilder {
        let t = if nullable {
            SchemaType::from_iter([Type::String, Type::Null])
        } else {
            SchemaType::Type(Type::String)
        };
        ObjectBuilder::new().schema_type(t)
    }

    fn alias_like(nullable: bool, description: &str) -> ObjectBuilder {
        string(nullable)
            .min_length(Some(1))
            .max_length(Some(MAX_ALIAS_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some(description))
    }

    pub fn alias() -> ObjectBuilder {
        alias_like(
            false,
            "Letters, digits, `.`, `_`, `-`; 1 to 128 characters; not starting with `.` or `-`.",
        )
    }
    pub fn alias_opt(description: &str) -> ObjectBuilder {
        alias_like(true, description)
    }
    pub fn cluster() -> ObjectBuilder {
        alias_opt(
            "A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and credentials come from there. Not with `server` or caller credentials.",
        )
    }
    pub fn service_id() -> ObjectBuilder {
        alias_opt("PlainTTY service id (the `{service_id}` path segment): an alias-like name.")
    }
    /// A tag (query parameter).
    pub fn tag_query() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_ALIAS_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some("Pods with this tag."))
    }
    pub fn tag_opt() -> ObjectBuilder {
        alias_opt("Pods with this tag.")
    }
    pub fn set_opt() -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .max_length(Some(MAX_SET_NAME_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some("Members of this pod set."))
    }
    pub fn set_name() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_SET_NAME_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some(
                "The set's name: letters, digits, `.`, `_`, `-`; 1 to 63 characters; not starting with `.` or `-`. Members are `NAME/POD`.",
            ))
    }
    pub fn set_cluster() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_ALIAS_LEN))
            .pattern(Some(ALIAS_PATTERN))
            .description(Some(
                "A cluster named in the daemon's configuration (`GET /api/v1/clusters`).",
            ))
    }
    pub fn set_namespace() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(DNS_LABEL_MAX_LEN))
            .pattern(Some(DNS_LABEL_PATTERN))
            .description(Some(
                "Kubernetes namespace, a DNS-1123 label (lower-case letters, digits, `-`).",
            ))
    }
    pub fn set_selector() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_SELECTOR_LEN))
            .pattern(Some(non_blank_pattern()))
            .description(Some(
                "Kubernetes label selector (`app=web`, `tier in (a,b)`, `!canary`), not empty; the API server checks it.",
            ))
    }
    pub fn alias_prefix() -> ObjectBuilder {
        string(true)
            .max_length(Some(MAX_ALIAS_LEN))
            .pattern(Some("^([A-Za-z0-9_][A-Za-z0-9._-]*)?$"))
            .description(Some(
                "Aliases become `{alias_prefix}{pod name}`; empty or an alias-like prefix.",
            ))
    }

    fn alias_array(nullable: bool, min_items: Option<usize>, description: &str) -> ArrayBuilder {
        let mut t = vec![Type::Array];
        if nullable {
            t.push(Type::Null);
        }
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter(t))
            .items(alias_like(false, "An alias-like name."))
            .min_items(min_items)
            .description(Some(description))
    }
    pub fn tags() -> ArrayBuilder {
        alias_array(false, None, "Tags: alias-like names.")
    }
    pub fn tags_opt() -> ArrayBuilder {
        alias_array(
            true,
            None,
            "Replaces the pod's tags when present: alias-like names.",
        )
    }
    pub fn aliases_opt() -> ArrayBuilder {
        alias_array(
            true,
            Some(1),
            "The pods to run in, by alias (at least one).",
        )
    }

    pub fn pod_name() -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .max_length(Some(DNS_SUBDOMAIN_MAX_LEN))
            .pattern(Some(DNS_SUBDOMAIN_PATTERN))
            .description(Some(
                "The pod's name, a Kubernetes DNS-1123 subdomain (lower-case letters, digits, `-`, `.`).",
            ))
    }
    pub fn namespace_opt() -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .max_length(Some(DNS_LABEL_MAX_LEN))
            .pattern(Some(DNS_LABEL_PATTERN))
            .description(Some(
                "Kubernetes namespace, a DNS-1123 label (lower-case letters, digits, `-`).",
            ))
    }
    pub fn container_opt() -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .max_length(Some(DNS_LABEL_MAX_LEN))
            .pattern(Some(DNS_LABEL_PATTERN))
            .description(Some(
                "Kubernetes container name, a DNS-1123 label (lower-case letters, digits, `-`).",
            ))
    }
    pub fn import_namespace() -> ObjectBuilder {
        string(false)
            .max_length(Some(DNS_LABEL_MAX_LEN))
            .pattern(Some("^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"))
            .description(Some(
                "Kubernetes namespace to list, a DNS-1123 label; empty lists every namespace.",
            ))
    }

    fn text(nullable: bool, description: &str) -> ObjectBuilder {
        string(nullable)
            .min_length(Some(1))
            .pattern(Some(SINGLE_LINE_PATTERN))
            .description(Some(description))
    }
    pub fn url() -> ObjectBuilder {
        text(
            true,
            "A provider URL: PlainTTY `wss://HOST/exec/{service_id}/?token=JWT&cols=220&pod=POD`, or a Kubernetes exec URL `https://SERVER/api/v1/namespaces/NS/pods/POD/exec`. No control characters.",
        )
    }
    pub fn server() -> ObjectBuilder {
        text(
            true,
            "PlainTTY base URL (`wss://host[:port]`) or Kubernetes API server URL. No control characters.",
        )
    }
    pub fn label_selector() -> ObjectBuilder {
        string(true)
            .pattern(Some(SINGLE_LINE_PATTERN))
            .description(Some("Kubernetes label selector; empty selects every pod."))
    }
    /// A credential: one line with something other than white space.
    pub fn token() -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .pattern(Some(non_blank_pattern()))
            .description(Some(
                "A credential (bearer token); overrides one carried in `url`. Never shown in responses.",
            ))
    }
    fn pem(description: &str) -> ObjectBuilder {
        string(true)
            .min_length(Some(1))
            .pattern(Some(MULTI_LINE_PATTERN))
            .description(Some(description))
    }
    pub fn certificate_authority() -> ObjectBuilder {
        pem("PEM certificates the Kubernetes API server's certificate must chain to.")
    }
    pub fn client_certificate() -> ObjectBuilder {
        pem("PEM client certificate for the Kubernetes API server (with `client_key`).")
    }
    pub fn client_key() -> ObjectBuilder {
        pem("PEM private key of `client_certificate`. Stored as a secret, never shown.")
    }

    pub fn command() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_COMMAND_LEN))
            .pattern(Some(command_pattern()))
            .description(Some(
                "Shell text run in the pod's shell (a script: newlines allowed; no NUL or other control characters but tab, LF and CR; not only white space).",
            ))
    }
    pub fn cols() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(MIN_COLS))
            .maximum(Some(MAX_COLS))
            .description(Some("Terminal width for TTY pods, 20 to 1000."))
    }
    /// The maximum is the daemon's configured `max_command_timeout_secs`.
    pub fn timeout() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
            .exclusive_minimum(Some(0))
            .maximum(Some(DEFAULT_MAX_COMMAND_TIMEOUT_SECS))
            .description(Some(
                "Seconds, more than 0 and at most the daemon's maximum command timeout; the daemon's default command timeout when absent.",
            ))
    }
    fn fanout_count(description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(1))
            .maximum(Some(MAX_FANOUT_PODS as u32))
            .description(Some(description))
    }
    pub fn canary() -> ObjectBuilder {
        fanout_count(
            "Run this many pods first (1 to 100000); if any of them fails, the rest are skipped.",
        )
    }
    pub fn pick() -> ObjectBuilder {
        fanout_count("Run on this many of the named pods (1 to 100000), chosen at random.")
    }
    pub fn batch() -> ObjectBuilder {
        string(true)
            .pattern(Some(BATCH_PATTERN))
            .description(Some(
                "Run in waves of N pods (`25`) or P percent of the pods (`10%`, rounded up); each wave starts when the previous one has ended.",
            ))
    }
    pub fn max_failures() -> ObjectBuilder {
        string(true)
            .pattern(Some(MAX_FAILURES_PATTERN))
            .description(Some(
                "Failure budget: once more than N pods (`2`) or P percent of the pods (`5%`, rounded down) failed, no more pods start; those left are recorded `skipped`.",
            ))
    }
    pub fn rerun_failed() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(1))
            .maximum(Some(i64::MAX))
            .description(Some(
                "A job id: run that job's command again on its pods that failed (status failed, timeout or error). Not with `command`, `aliases`, `tag` or `all`.",
            ))
    }
    pub fn concurrency() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .minimum(Some(1))
            .maximum(Some(MAX_CONCURRENCY as u32))
            .description(Some(
                "How many pods run at once, 1 to 1024; the daemon's default when absent.",
            ))
    }
    /// A path in a pod (query parameter).
    pub fn pod_path() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_POD_PATH_LEN))
            .pattern(Some("^[^\\x00-\\x1f\\x7f-\\x9f]*[^/\\x00-\\x1f\\x7f-\\x9f]$"))
            .description(Some(
                "A file in the pod: absolute or relative to the shell's current directory, not ending in `/`, no control characters.",
            ))
    }
    /// The command of `POST /pods/{alias}/exec/stdin` (query parameter).
    pub fn stdin_command() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_STDIN_COMMAND_LEN))
            .pattern(Some(command_pattern()))
            .description(Some(
                "Shell text run in the pod's shell with the body as its stdin (newlines allowed; no NUL or other control characters but tab, LF and CR; not only white space); at most 8192 characters (it travels in the query string).",
            ))
    }
    /// Octal permission bits (query parameter).
    pub fn file_mode() -> ObjectBuilder {
        string(false)
            .pattern(Some("^0?[0-7]{3}$"))
            .description(Some("Octal permission bits, e.g. `644` or `0600`."))
    }
    /// Comma-separated aliases (query parameter).
    pub fn alias_list() -> ObjectBuilder {
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX_ALIAS_LIST_LEN))
            .pattern(Some(
                "^[A-Za-z0-9_][A-Za-z0-9._-]*(,[A-Za-z0-9_][A-Za-z0-9._-]*)*$",
            ))
            .description(Some(
                "Comma-separated aliases (each as the alias rule says).",
            ))
    }
    /// Seconds (query parameter).
    pub fn query_timeout() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Number))
            .exclusive_minimum(Some(0))
            .maximum(Some(DEFAULT_MAX_COMMAND_TIMEOUT_SECS))
            .description(Some(
                "Seconds the command may run once its input is in the pod, more than 0 and at most the daemon's maximum command timeout; the daemon's default when absent.",
            ))
    }
    /// Fan-out concurrency (query parameter).
    pub fn query_concurrency() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(MAX_CONCURRENCY as u32))
            .description(Some(
                "How many pods receive the file at once, 1 to 1024; the daemon's fan-out concurrency when absent.",
            ))
    }
}

/// `POST /api/v1/pods/`: register a pod from a provider URL, or from fields. Kubernetes pods
/// name a configured `cluster`, or bring their own credentials (`token`, or `client_certificate`
/// with `client_key`); the API takes no kubeconfig path.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PodCreate {
    /// Unique name for the pod: letters, digits, `.`, `_`, `-`; at most 128 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::alias))]
    pub alias: String,
    pub provider: ProviderKind,
    /// A provider URL: PlainTTY `wss://HOST/exec/{service_id}/?token=JWT&cols=220&pod=POD`, or a
    /// Kubernetes exec URL `https://SERVER/api/v1/namespaces/NS/pods/POD/exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::url))]
    pub url: Option<String>,
    /// Token; overrides one carried in `url`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::token))]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::pod_name))]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::namespace_opt))]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::container_opt))]
    pub container: Option<String>,
    /// PlainTTY service id (the `{service_id}` path segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::service_id))]
    pub service_id: Option<String>,
    /// PlainTTY base URL (`wss://host[:port]`) or Kubernetes API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::server))]
    pub server: Option<String>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::cluster))]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::certificate_authority))]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_certificate))]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_key))]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::cols))]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tags))]
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
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::url))]
    pub url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::token))]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::pod_name))]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::namespace_opt))]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::container_opt))]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::service_id))]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::server))]
    pub server: Option<String>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::cluster))]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::certificate_authority))]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_certificate))]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_key))]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::cols))]
    pub cols: Option<u16>,
    /// Replaces the pod's tags when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tags_opt))]
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
    /// Waiting for a share of the daemon's open-file limit (`waiting (open-file limit)`): as
    /// many sessions are open as the limit allows after the reserve for the API and database.
    /// It connects when another session closes.
    WaitingOpenFiles,
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
            PodState::WaitingOpenFiles => "waiting_open_files",
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
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::command))]
    pub command: String,
    /// Seconds, more than 0 and at most the daemon's maximum command timeout; the daemon's
    /// default command timeout when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::timeout))]
    pub timeout: Option<f64>,
    /// Answer `422 command_failed` (with the record) when the exit code is not 0.
    #[serde(default)]
    pub check: bool,
}

/// `POST /api/v1/exec`: one command to many pods, as a job. Exactly one of `aliases`, `tag`,
/// `all` (with `command`), or `rerun_failed` (without: the job's command runs again).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FanOutRequest {
    /// Required unless `rerun_failed` is given (then it must be absent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::command))]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::aliases_opt))]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tag_opt))]
    pub tag: Option<String>,
    /// Every current member of this pod set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::set_opt))]
    pub set: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::timeout))]
    pub timeout: Option<f64>,
    /// How many pods run at once; the daemon's default when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::concurrency))]
    pub concurrency: Option<usize>,
    /// Waves: `N` pods or `P%` of the pods at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::batch))]
    pub batch: Option<String>,
    /// Failure budget: `N` pods or `P%` of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::max_failures))]
    pub max_failures: Option<String>,
    /// Pods run first; any failure among them skips the rest.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::canary))]
    pub canary: Option<usize>,
    /// Run on this many of the pods, chosen at random.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::pick))]
    pub pick: Option<usize>,
    /// Run job N's command again on its pods that failed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::rerun_failed))]
    pub rerun_failed: Option<i64>,
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
    /// Not run: a fan-out stopped before this pod's turn (failure budget, canary); `error` says
    /// why.
    Skipped,
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
            CommandStatus::Skipped => "skipped",
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
            "skipped" => CommandStatus::Skipped,
            other => {
                return Err(format!(
                    "unknown status {other:?} (expected running, succeeded, failed, timeout, error, interrupted, cancelled or skipped)"
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
    /// The fan-out job this command belongs to (`GET /api/v1/jobs/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
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
    /// Fan-out only, first: the job's id (0 when the database could not record the job; the
    /// pods run anyway) and how many pods it names.
    Job {
        id: i64,
        pods: usize,
    },
    /// Fan-out only, last: the job's summary (groups of identical output, counts, skipped pods).
    JobFinished {
        summary: Box<JobSummary>,
    },
}

/// A fan-out job as `GET /api/v1/jobs` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    pub id: i64,
    pub command: String,
    /// Who asked, as [`CommandRecord::actor`].
    pub actor: String,
    /// Which pods: `aliases: a,b`, `tag: T`, `all`, `rerun-failed of job N`, with `pick N`.
    pub targets: String,
    /// The controls the job ran with.
    pub options: JobOptions,
    pub created_at: DateTime<Utc>,
    /// Absent while it runs (or when the daemon stopped before it ended).
    pub finished_at: Option<DateTime<Utc>>,
    /// Pods in the job (skipped ones included).
    pub total: usize,
    /// Why the job stopped early (failure budget, canary), if it did.
    pub stopped: Option<String>,
}

/// The controls of a fan-out, as the job records them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobOptions {
    pub timeout_secs: f64,
    pub concurrency: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_failed: Option<i64>,
}

/// Pods whose results were identical: same stdout, stderr, exit code, status and error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputGroup {
    /// The members, folded: `web-[00-41,43-99]`.
    pub pods: String,
    pub count: usize,
    /// The members, sorted.
    pub aliases: Vec<String>,
    pub status: CommandStatus,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    /// The output kept in history was cut at the daemon's cap.
    pub truncated: bool,
}

/// Pods a job did not run, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkippedGroup {
    pub reason: String,
    /// Folded, as in [`OutputGroup::pods`].
    pub pods: String,
    pub count: usize,
    pub aliases: Vec<String>,
}

/// `GET /api/v1/jobs/{id}`: a job and its results folded into groups of identical output,
/// largest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub job: JobInfo,
    /// Results by status (`succeeded`, `failed`, `skipped`, ...).
    pub counts: BTreeMap<String, usize>,
    pub groups: Vec<OutputGroup>,
    pub skipped: Vec<SkippedGroup>,
}

/// `GET /api/v1/jobs` answer: newest first; pass `next_cursor` back as `cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    pub items: Vec<JobInfo>,
    pub next_cursor: Option<String>,
}

/// `POST /api/v1/commands/{id}/cancel` answer: the command is being interrupted; its caller
/// gets the record, status `cancelled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelAccepted {
    pub id: i64,
    pub cancelling: bool,
}

/// `POST /api/v1/exec` answer (without NDJSON streaming).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FanOutResponse {
    pub results: Vec<CommandRecord>,
    pub succeeded: usize,
    /// Pods that ran and did not succeed.
    pub failed: usize,
    pub duration_ms: f64,
    /// The job this fan-out was (`GET /api/v1/jobs/{id}`); absent when the database could not
    /// record it (the pods ran anyway and their results wait in the spool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// Pods not run (status `skipped`).
    #[serde(default)]
    pub skipped: usize,
    /// Why the fan-out stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// `GET /api/v1/commands` answer: newest first; pass `next_cursor` back as `cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandPage {
    pub items: Vec<CommandSummary>,
    pub next_cursor: Option<String>,
}

/// Bytes of `command`, `stdout` and `stderr` a history listing shows of each row: the start of
/// each, cut at a UTF-8 character boundary. The full text comes from `GET
/// /api/v1/commands/{id}` and `GET /api/v1/commands/{id}/output`.
pub const HISTORY_PREVIEW_BYTES: usize = 1024;

/// One row of a history listing: the record with `command`, `stdout` and `stderr` cut to
/// their first [`HISTORY_PREVIEW_BYTES`] bytes, and their full sizes. Derefs to the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandSummary {
    #[serde(flatten)]
    pub record: CommandRecord,
    /// True when `command`, `stdout` or `stderr` is cut short here (compare with the sizes);
    /// `GET /api/v1/commands/{id}` has them in full.
    #[serde(default)]
    pub preview: bool,
    /// Full size of `command` in bytes (UTF-8).
    #[serde(default)]
    pub command_bytes: u64,
    /// Full size of `stdout` in bytes (UTF-8), as stored.
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Full size of `stderr` in bytes (UTF-8), as stored.
    #[serde(default)]
    pub stderr_bytes: u64,
}

impl CommandSummary {
    /// A listing row of `record`: its texts cut to previews, with their full sizes.
    pub fn of(mut record: CommandRecord) -> CommandSummary {
        let command_bytes = record.command.len() as u64;
        let stdout_bytes = record.stdout.len() as u64;
        let stderr_bytes = record.stderr.len() as u64;
        let mut preview = false;
        for text in [&mut record.command, &mut record.stdout, &mut record.stderr] {
            preview |= cut_preview(text, HISTORY_PREVIEW_BYTES);
        }
        CommandSummary {
            record,
            preview,
            command_bytes,
            stdout_bytes,
            stderr_bytes,
        }
    }
}

impl std::ops::Deref for CommandSummary {
    type Target = CommandRecord;
    fn deref(&self) -> &CommandRecord {
        &self.record
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary; answers whether it cut.
pub fn cut_preview(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// `POST /api/v1/pods/import`: list pods through the Kubernetes API and register them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::import_namespace))]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::label_selector))]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::server))]
    pub server: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::token))]
    pub token: Option<Secret>,
    /// A cluster named in the daemon's configuration (`GET /api/v1/clusters`); its server and
    /// credentials come from there. Not with `server` or caller credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::cluster))]
    pub cluster: Option<String>,
    /// PEM certificates the Kubernetes API server's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::certificate_authority))]
    pub certificate_authority: Option<String>,
    /// PEM client certificate for the Kubernetes API server (with `client_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_certificate))]
    pub client_certificate: Option<String>,
    /// PEM private key of `client_certificate`. Stored as a secret, never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "Secret::serialize_exposed"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::client_key))]
    pub client_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    /// Aliases become `{alias_prefix}{pod name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::alias_prefix))]
    pub alias_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::tags))]
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

/// `POST /api/v1/sets`: a pod set. The daemon watches the cluster for pods of `namespace` that
/// match `selector` and keeps every Ready one registered as `NAME/POD`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PodSetCreate {
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::set_name))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::set_cluster))]
    pub cluster: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::set_namespace))]
    pub namespace: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::set_selector))]
    pub selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = schema::container_opt))]
    pub container: Option<String>,
}

/// A pod set and how its watch stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodSetInfo {
    pub name: String,
    pub cluster: String,
    pub namespace: String,
    pub selector: String,
    #[serde(default)]
    pub container: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub actor: String,
    /// Members registered now.
    pub members: usize,
    /// `starting` (first list not done), `watching`, or `failing` (see `error`; the watch retries).
    pub watch: String,
    /// The last watch error, while the watch is failing.
    #[serde(default)]
    pub error: Option<String>,
}

/// One member of a pod set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodSetMember {
    /// `SET/POD`: the alias every per-pod route and fan-out takes.
    pub alias: String,
    /// The Kubernetes pod's name.
    pub pod: String,
    pub state: PodState,
}

/// `GET /api/v1/sets/{name}`: the set and its members, by pod name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodSetDetail {
    #[serde(flatten)]
    pub set: PodSetInfo,
    pub pods: Vec<PodSetMember>,
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
    SetCreated,
    SetDeleted,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::PodRegistered => "pod_registered",
            AuditAction::PodUpdated => "pod_updated",
            AuditAction::PodRemoved => "pod_removed",
            AuditAction::PodsImported => "pods_imported",
            AuditAction::SetCreated => "set_created",
            AuditAction::SetDeleted => "set_deleted",
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
            "set_created" => AuditAction::SetCreated,
            "set_deleted" => AuditAction::SetDeleted,
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
    /// The open-file limit and how it is shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesHealth>,
}

/// The daemon's open-file limit, the descriptors kept back for the API and the database, and
/// the pod sessions that share the rest (beyond them pods wait in `waiting_open_files`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FilesHealth {
    /// The soft `RLIMIT_NOFILE` the daemon runs with (raised to the hard limit at start).
    pub limit: u64,
    /// Descriptors kept for the API and the database.
    pub reserve: u64,
    /// Pod sessions that may be open at once.
    pub session_budget: u64,
    /// Pod sessions open or connecting now.
    pub sessions_open: u64,
    /// Second execs (interrupts on Kubernetes, raw input) that may be open at once.
    pub side_exec_budget: u64,
    /// Descriptors the daemon has open now.
    pub in_use: u64,
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
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`, `upstream`,
    /// `database_unavailable`, `command_not_running`, `job_not_found`, `shutting_down`,
    /// `internal`, ...
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
    fn previews_cut_at_a_character_boundary() {
        let mut ascii = "a".repeat(10);
        assert!(!cut_preview(&mut ascii, 10));
        assert!(cut_preview(&mut ascii, 4));
        assert_eq!(ascii, "aaaa");
        // 'é' is two bytes: a cut through it keeps the whole characters before it.
        let mut accents = "éééé".to_owned();
        assert!(cut_preview(&mut accents, 5));
        assert_eq!(accents, "éé");
        let mut emoji = "🦀🦀".to_owned();
        assert!(cut_preview(&mut emoji, 3));
        assert_eq!(emoji, "");
    }

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
    fn integers_may_have_a_zero_fraction() {
        let r: FanOutRequest =
            serde_json::from_str(r#"{"command":"ls","all":true,"concurrency":4.0}"#).unwrap();
        assert_eq!(r.concurrency, Some(4));
        let r: PodUpdate = serde_json::from_str(r#"{"cols":526}"#).unwrap();
        assert_eq!(r.cols, Some(526));
        let r: PodUpdate = serde_json::from_str(r#"{"cols":null}"#).unwrap();
        assert_eq!(r.cols, None);
        for bad in [
            r#"{"cols":526.5}"#,
            r#"{"cols":-1}"#,
            r#"{"cols":70000}"#,
            r#"{"cols":"1"}"#,
        ] {
            assert!(serde_json::from_str::<PodUpdate>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_state_is_tagged() {
        let json = serde_json::to_value(PodState::Busy { queued: 2 }).unwrap();
        assert_eq!(json["state"], "busy");
        assert_eq!(json["queued"], 2);
    }
}

/// Query of `POST /api/v1/pods/{alias}/exec/stdin`: the command; the body is its stdin.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct StdinQuery {
    /// The shell command, as in `ExecRequest` but at most 8192 characters.
    #[cfg_attr(feature = "openapi", param(schema_with = schema::stdin_command))]
    pub command: String,
    /// Seconds the command may run once its stdin is in the pod (default: the daemon's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::query_timeout))]
    pub timeout: Option<f64>,
    /// Answer `422 command_failed` when the exit code is not 0.
    #[serde(default)]
    pub check: bool,
}

/// Query of `POST /api/v1/pods/{alias}/exec/script`: the body is the script.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ScriptQuery {
    /// Seconds the script may run once it is in the pod (default: the daemon's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::query_timeout))]
    pub timeout: Option<f64>,
    /// Answer `422 command_failed` when the exit code is not 0.
    #[serde(default)]
    pub check: bool,
}

/// Query of `PUT /api/v1/pods/{alias}/files`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// The file in the pod: absolute, or relative to the shell's current directory; not
    /// ending in `/`; 1 to 4096 bytes, no control characters.
    #[cfg_attr(feature = "openapi", param(schema_with = schema::pod_path))]
    pub path: String,
    /// Octal permission bits for the new file, e.g. `644`; default 0666 less the
    /// shell's umask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::file_mode))]
    pub mode: Option<String>,
}

/// Query of `GET /api/v1/pods/{alias}/files`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FileReadQuery {
    /// The file in the pod (as in `FileQuery`).
    #[cfg_attr(feature = "openapi", param(schema_with = schema::pod_path))]
    pub path: String,
}

/// Query of `POST /api/v1/files`: one file to many pods. Exactly one of `aliases`, `tag`, `all`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FileFanOutQuery {
    /// The file in every pod (as in `FileQuery`).
    #[cfg_attr(feature = "openapi", param(schema_with = schema::pod_path))]
    pub path: String,
    /// Comma-separated aliases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::alias_list))]
    pub aliases: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::tag_query))]
    pub tag: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::file_mode))]
    pub mode: Option<String>,
    /// How many pods receive the file at once (default: the daemon's fan-out concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(schema_with = schema::query_concurrency))]
    pub concurrency: Option<usize>,
}

/// One pod's copy: what the pod has after writing (size and SHA-256 it computed itself), and
/// whether that matches what was sent. A copy the pod cannot verify is not `ok`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileCopyResult {
    pub alias: String,
    pub path: String,
    pub ok: bool,
    /// Bytes in the pod's file (when it was written).
    pub size: Option<u64>,
    /// The SHA-256 the pod computed (lower-case hex), when it could.
    pub sha256: Option<String>,
    /// Why the copy failed.
    pub error: Option<String>,
    pub duration_ms: f64,
}

/// `PUT /api/v1/pods/{alias}/files` and `POST /api/v1/files` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileCopyResponse {
    /// Bytes sent, and their SHA-256 as the daemon received them.
    pub size: u64,
    pub sha256: String,
    pub results: Vec<FileCopyResult>,
    pub succeeded: usize,
    pub failed: usize,
    pub duration_ms: f64,
}

/// Response headers of `GET /api/v1/pods/{alias}/files`: the file's size and SHA-256 as the
/// pod computed them before sending; the client checks the bytes it received against them.
pub const FILE_SIZE_HEADER: &str = "x-podwrangler-size";
pub const FILE_SHA256_HEADER: &str = "x-podwrangler-sha256";
