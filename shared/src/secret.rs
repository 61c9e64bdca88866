//! Secrets (pod tokens, API keys) that never show themselves, and URL redaction.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted secret looks like wherever it is shown.
pub const REDACTED: &str = "***";

/// Query parameters whose values are credentials and are replaced by [`REDACTED`] when a URL is shown.
const SECRET_QUERY_KEYS: &[&str] = &[
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "secret",
    "jwt",
];

/// A credential. `Debug`, `Display` and `Serialize` print [`REDACTED`]; only [`Secret::expose`]
/// gives the value, so every place that uses the real value is easy to find.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value. Call it only where the secret is sent to its peer or stored.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Serializer for the few fields that must carry the real value (a request body that hands a
    /// token to the daemon): `#[serde(serialize_with = "Secret::serialize_exposed")]`.
    pub fn serialize_exposed<S: Serializer>(
        secret: &Option<Secret>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(s) => serializer.serialize_some(s.expose()),
            None => serializer.serialize_none(),
        }
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Secret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A credential; responses show it as \"***\"."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Secret {}

/// `url` with credentials hidden: the values of token-like query parameters and any userinfo
/// password become [`REDACTED`]. Text that does not parse as a URL is redacted the same way by a
/// plain scan, so a malformed URL in an error message cannot leak a token either.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some(REDACTED));
            }
            if parsed.query().is_some() {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_query_key(&k) {
                            REDACTED.to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                let mut query = String::new();
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        query.push('&');
                    }
                    query.push_str(&encode_component(k));
                    query.push('=');
                    if v == REDACTED {
                        query.push_str(REDACTED);
                    } else {
                        query.push_str(&encode_component(v));
                    }
                }
                parsed.set_query(Some(&query));
            }
            parsed.to_string()
        }
        Err(_) => redact_query_text(url),
    }
}

/// `scheme://user:password@host` -> `scheme://user:***@host`, without parsing the URL.
fn redact_userinfo_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// True for query keys whose values are credentials (`token`, `api_key`, ...).
pub fn is_secret_query_key(key: &str) -> bool {
    SECRET_QUERY_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
}

fn encode_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Redacts userinfo passwords and `key=value` pairs by scanning text, for strings that are not
/// valid URLs.
fn redact_query_text(text: &str) -> String {
    let text = redact_userinfo_text(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before
            .rfind(|c: char| c == '?' || c == '&' || c == ';' || c.is_whitespace())
            .map(|i| i + 1)
            .unwrap_or(0);
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let value_end = after
            .find(|c: char| c == '&' || c == ';' || c == '#' || c.is_whitespace())
            .unwrap_or(after.len());
        if is_secret_query_key(&before[key_start..]) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&after[..value_end]);
        }
        rest = &after[value_end..];
    }
    out.push_str(rest);
    out
}

/// True for `localhost` and for IP literals in 127.0.0.0/8 or `::1`. Names other than
/// `localhost` are not resolved: what a name resolves to can change after it was checked.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Why credentials must not be sent to `url`, if they must not: a plain `http://` or `ws://` URL
/// whose host is not loopback would carry them in clear text.
pub fn cleartext_refusal(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "ws") {
        return None;
    }
    let host = parsed.host_str().unwrap_or("");
    if is_loopback_host(host) {
        return None;
    }
    Some(format!(
        "refusing to send credentials in clear text to {host}: use https:// or wss:// (plain http/ws is allowed only to loopback addresses)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_itself() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.to_string(), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2-token");
        let back: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back.expose(), "abc");
    }

    #[test]
    fn redacts_token_query_parameter_and_keeps_the_rest() {
        let url =
            "wss://k8s.example.com/exec/45582/?token=eyJhbGci.secret&cols=220&pod=web-abc-xyz";
        let shown = redact_url(url);
        assert!(!shown.contains("eyJhbGci"), "{shown}");
        assert!(shown.contains("token=***"), "{shown}");
        assert!(shown.contains("cols=220"), "{shown}");
        assert!(shown.contains("pod=web-abc-xyz"), "{shown}");
    }

    #[test]
    fn redacts_userinfo_password() {
        let shown = redact_url("postgres://app:s3cr3t@db.internal:5432/podwrangler");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("app:***@db.internal"), "{shown}");
    }

    #[test]
    fn redacts_password_in_a_url_that_does_not_parse() {
        let shown = redact_url("postgres://u:pw-secret@[::1");
        assert!(!shown.contains("pw-secret"), "{shown}");
        assert!(shown.starts_with("postgres://u:***@"), "{shown}");
    }

    #[test]
    fn redacts_text_that_is_not_a_url() {
        let shown = redact_url("not a url ?token=abc123&pod=x");
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(shown.contains("pod=x"), "{shown}");
    }

    #[test]
    fn cleartext_is_refused_except_to_loopback() {
        for url in [
            "http://127.0.0.1:8080",
            "ws://127.9.9.9/exec/1/?token=t",
            "http://[::1]:6443",
            "ws://localhost:1/",
            "https://10.0.0.1:6443",
            "wss://example.com/exec/1/",
        ] {
            assert_eq!(cleartext_refusal(url), None, "{url}");
        }
        for url in [
            "http://10.0.0.1:6443",
            "ws://example.com/exec/1/?token=t",
            "http://127.0.0.1.example.com/",
            "ws://[::2]/",
        ] {
            let why = cleartext_refusal(url).expect(url);
            assert!(!why.contains("token=t"), "{why}");
        }
    }
}
