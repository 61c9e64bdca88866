//! Request validation: aliases, Kubernetes names, commands, timeouts, tags, URLs and control
//! characters, each error naming its field. The limits are those of
//! [`podwrangler::api::limits`], which the OpenAPI document states.

use std::time::Duration;

pub use podwrangler::api::limits::{
    DNS_LABEL_MAX_LEN, DNS_SUBDOMAIN_MAX_LEN, MAX_ACTOR_LEN, MAX_ALIAS_LEN, MAX_COLS,
    MAX_COMMAND_LEN, MAX_CONCURRENCY, MAX_PAGE_LIMIT, MIN_COLS,
};

use super::error::ApiError;

/// Refuses control characters in one-line text (`multi_line`: tab, LF and CR are allowed).
pub fn no_control(field: &str, value: &str, multi_line: bool) -> Result<(), ApiError> {
    match value
        .chars()
        .find(|&c| podwrangler::api::limits::refused_control(c, multi_line))
    {
        None => Ok(()),
        Some(c) => Err(ApiError::validation(
            field,
            format!(
                "contains the control character U+{:04X}{}",
                c as u32,
                if multi_line {
                    "; only tab, LF and CR are allowed"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// One-line text that is not empty and has no control characters.
pub fn text(field: &str, value: &str) -> Result<(), ApiError> {
    no_control(field, value, false)?;
    if value.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    Ok(())
}

/// A DNS-1123 label (Kubernetes namespaces, container names): 1 to 63 lower-case letters,
/// digits and `-`, starting and ending with a letter or digit.
pub fn dns_label(field: &str, value: &str) -> Result<(), ApiError> {
    no_control(field, value, false)?;
    if value.is_empty() || value.len() > DNS_LABEL_MAX_LEN {
        return Err(ApiError::validation(
            field,
            format!("must be 1 to {DNS_LABEL_MAX_LEN} characters (a DNS-1123 label)"),
        ));
    }
    if !is_label(value) {
        return Err(ApiError::validation(
            field,
            format!(
                "{value:?} is not a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (Kubernetes pod names): at most 253 characters, DNS-1123 labels
/// joined by `.`.
pub fn dns_subdomain(field: &str, value: &str) -> Result<(), ApiError> {
    no_control(field, value, false)?;
    if value.is_empty() || value.len() > DNS_SUBDOMAIN_MAX_LEN {
        return Err(ApiError::validation(
            field,
            format!("must be 1 to {DNS_SUBDOMAIN_MAX_LEN} characters (a DNS-1123 subdomain)"),
        ));
    }
    // Labels of a subdomain may be longer than 63 (as Kubernetes checks pod names).
    if !value.split('.').all(|l| !l.is_empty() && is_label_chars(l)) {
        return Err(ApiError::validation(
            field,
            format!(
                "{value:?} is not a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn is_label(v: &str) -> bool {
    !v.is_empty() && v.len() <= DNS_LABEL_MAX_LEN && is_label_chars(v)
}

fn is_label_chars(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(|c| *c != b'-')
        && b.last().is_some_and(|c| *c != b'-')
}

/// A pod as the API names it: an alias (letters, digits, `.`, `_`, `-`; 1 to 128 characters;
/// not starting with `.` or `-`), or a pod set member's `SET/POD`.
pub fn alias(alias: &str) -> Result<(), ApiError> {
    pod_ref_in("alias", alias)
}

/// As [`alias`], naming `field` in the error.
pub fn pod_ref_in(field: &str, alias: &str) -> Result<(), ApiError> {
    let Some((set, pod)) = alias.split_once('/') else {
        return alias_in(field, alias);
    };
    set_name_in(field, set)?;
    dns_subdomain(field, pod)?;
    let len = alias.chars().count();
    if len > MAX_ALIAS_LEN {
        return Err(ApiError::validation(
            field,
            format!("is {len} characters long; at most {MAX_ALIAS_LEN}"),
        ));
    }
    Ok(())
}

/// What a caller may register: an alias without `/` (`SET/POD` belongs to pod sets).
pub fn registered_alias(alias: &str) -> Result<(), ApiError> {
    if alias.contains('/') {
        return Err(ApiError::validation(
            "alias",
            format!(
                "{alias:?}: aliases with '/' are pod set members (SET/POD); a pod set registers them"
            ),
        ));
    }
    alias_in("alias", alias)
}

/// Longest pod set name: short enough that `SET/POD` fits an alias for pod names of up to 64
/// characters (Deployment pods have at most 63).
pub const MAX_SET_NAME_LEN: usize = 63;

/// A pod set's name: alias-like, at most [`MAX_SET_NAME_LEN`] characters.
pub fn set_name_in(field: &str, name: &str) -> Result<(), ApiError> {
    alias_in(field, name)?;
    if name.chars().count() > MAX_SET_NAME_LEN {
        return Err(ApiError::validation(
            field,
            format!("a pod set name has at most {MAX_SET_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

/// As [`alias`], naming `field` in the error.
pub fn alias_in(field: &str, alias: &str) -> Result<(), ApiError> {
    no_control(field, alias, false)?;
    if alias.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    let len = alias.chars().count();
    if len > MAX_ALIAS_LEN {
        return Err(ApiError::validation(
            field,
            format!("is {len} characters long; at most {MAX_ALIAS_LEN}"),
        ));
    }
    if let Some(bad) = alias
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ApiError::validation(
            field,
            format!("{alias:?} contains {bad:?}; use letters, digits, '.', '_' and '-'"),
        ));
    }
    if alias.starts_with(['.', '-']) {
        return Err(ApiError::validation(
            field,
            format!("{alias:?} must start with a letter, digit or '_'"),
        ));
    }
    Ok(())
}

/// Not empty, not only whitespace, not huge; a script, so newlines, CR and tabs are fine, but
/// no NUL nor any other control character.
pub fn command(command: &str) -> Result<(), ApiError> {
    if command.contains('\0') {
        return Err(ApiError::validation(
            "command",
            "must not contain NUL bytes",
        ));
    }
    no_control("command", command, true)?;
    if command.trim().is_empty() {
        return Err(ApiError::validation("command", "must not be empty"));
    }
    let len = command.chars().count();
    if len > MAX_COMMAND_LEN {
        return Err(ApiError::validation(
            "command",
            format!("is {len} characters; at most {MAX_COMMAND_LEN}"),
        ));
    }
    Ok(())
}

/// Seconds in `(0, max]`; `default` when absent.
pub fn timeout(value: Option<f64>, default: Duration, max: Duration) -> Result<Duration, ApiError> {
    match value {
        None => Ok(default),
        Some(t) if !t.is_finite() || t <= 0.0 => Err(ApiError::validation(
            "timeout",
            format!("{t} is not a positive number of seconds"),
        )),
        Some(t) if t > max.as_secs_f64() => Err(ApiError::validation(
            "timeout",
            format!(
                "{t} seconds is more than the maximum of {}",
                max.as_secs_f64()
            ),
        )),
        Some(t) => Ok(Duration::from_secs_f64(t)),
    }
}

/// Tags use the alias character set.
pub fn tags(tags: &[String]) -> Result<(), ApiError> {
    for (i, tag) in tags.iter().enumerate() {
        alias_in(&format!("tags[{i}]"), tag)?;
    }
    Ok(())
}

/// An absolute URL with one of `schemes`.
pub fn url(field: &str, value: &str, schemes: &[&str]) -> Result<url::Url, ApiError> {
    // The URL parser drops tabs and newlines and trims control characters: refuse them first,
    // so what is stored is what was sent.
    text(field, value)?;
    let parsed = url::Url::parse(value).map_err(|e| {
        ApiError::validation(
            field,
            format!("{} is not a valid URL: {e}", podwrangler::redact_url(value)),
        )
    })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ApiError::validation(
            field,
            format!(
                "scheme {:?} is not one of {}",
                parsed.scheme(),
                schemes.join(", ")
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation(field, "has no host"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert!(alias("web-1.prod_a").is_ok());
        assert!(alias("").is_err());
        assert!(alias("a b").is_err());
        assert!(alias("-x").is_err());
        assert!(alias(&"a".repeat(129)).is_err());
        assert!(alias(&"a".repeat(128)).is_ok());
        // `SET/POD`: a pod set member; only a set registers those.
        assert!(alias("web/web-5d8f7-abcde").is_ok());
        assert!(registered_alias("web/web-5d8f7-abcde").is_err());
        assert!(registered_alias("web-0").is_ok());
        for bad in ["a/B", "a/", "/b", "a/b/c", "-a/b", "a b/c"] {
            assert!(alias(bad).is_err(), "{bad}");
        }
        assert!(alias(&format!("{}/b", "a".repeat(64))).is_err());
        assert!(set_name_in("set", &"a".repeat(63)).is_ok());
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns_label("namespace", "default").is_ok());
        assert!(dns_label("namespace", "a-1").is_ok());
        assert!(dns_label("namespace", &"a".repeat(63)).is_ok());
        for bad in [
            "", "-a", "a-", "A", "a_b", "a.b", "../x", "a\0", "a\r\n", "a&b",
        ] {
            assert!(dns_label("namespace", bad).is_err(), "{bad:?}");
        }
        assert!(dns_label("namespace", &"a".repeat(64)).is_err());
        assert!(dns_subdomain("pod_name", "web-5d8f7-00000").is_ok());
        assert!(dns_subdomain("pod_name", "a.b-c.d").is_ok());
        for bad in [
            "", ".a", "a.", "a..b", "../etc", "a/b", "a\0b", "a\nb", "a&b", "A",
        ] {
            assert!(dns_subdomain("pod_name", bad).is_err(), "{bad:?}");
        }
        assert!(dns_subdomain("pod_name", &"a".repeat(254)).is_err());
        match dns_subdomain("pod_name", "x\0") {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, "pod_name"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn control_characters() {
        assert!(command("echo a\necho b\r\n\techo c").is_ok());
        assert!(command("echo \0").is_err());
        assert!(command("echo \u{1b}[1m").is_err());
        assert!(command("\u{3000}").is_err());
        assert!(text("server", "ws://h/\n").is_err());
        assert!(url("server", "ws://h/a\tb", &["ws"]).is_err());
        assert!(alias("a\u{85}").is_err());
        assert!(no_control("client_key", "-----BEGIN-----\r\nx\n", true).is_ok());
        assert!(no_control("client_key", "x\u{7}", true).is_err());
    }

    #[test]
    fn timeouts() {
        let d = Duration::from_secs(30);
        let m = Duration::from_secs(60);
        assert_eq!(timeout(None, d, m).unwrap(), d);
        assert!(timeout(Some(0.0), d, m).is_err());
        assert!(timeout(Some(f64::NAN), d, m).is_err());
        assert!(timeout(Some(61.0), d, m).is_err());
        assert_eq!(
            timeout(Some(0.5), d, m).unwrap(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn urls_and_commands() {
        assert!(url("url", "ws://127.0.0.1:1/x", &["ws", "wss"]).is_ok());
        assert!(url("url", "ftp://h/", &["ws", "wss"]).is_err());
        let e = url("url", "not a url?token=sekrit", &["ws"]).unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
        assert!(command("  ").is_err());
        assert!(command("ls").is_ok());
    }
}
