//! Request validation: aliases, commands, timeouts, tags and URLs, each error naming its field.

use std::time::Duration;

use super::error::ApiError;

/// Longest accepted alias.
pub const MAX_ALIAS_LEN: usize = 128;
/// Longest accepted command text.
pub const MAX_COMMAND_LEN: usize = 256 * 1024;

/// Letters, digits, `.`, `_`, `-`; 1 to 128 characters; not starting with `.` or `-`.
pub fn alias(alias: &str) -> Result<(), ApiError> {
    alias_in("alias", alias)
}

/// As [`alias`], naming `field` in the error.
pub fn alias_in(field: &str, alias: &str) -> Result<(), ApiError> {
    if alias.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    if alias.len() > MAX_ALIAS_LEN {
        return Err(ApiError::validation(
            field,
            format!(
                "is {} characters long; at most {MAX_ALIAS_LEN}",
                alias.len()
            ),
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

/// Not empty, not only whitespace, no NUL, not huge.
pub fn command(command: &str) -> Result<(), ApiError> {
    if command.trim().is_empty() {
        return Err(ApiError::validation("command", "must not be empty"));
    }
    if command.contains('\0') {
        return Err(ApiError::validation(
            "command",
            "must not contain NUL bytes",
        ));
    }
    if command.len() > MAX_COMMAND_LEN {
        return Err(ApiError::validation(
            "command",
            format!("is {} bytes; at most {MAX_COMMAND_LEN}", command.len()),
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
        assert!(alias("a/b").is_err());
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
