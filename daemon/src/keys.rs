//! TCP API keys: named, with a scope (`read` < `exec` < `admin`), stored only as SHA-256 digests
//! in `api-keys.toml` (managed by `podwranglerd key add|list|revoke`) or in the config file.
//!
//! Keys are 32 random bytes, so a fast digest is enough: there is no dictionary to try against a
//! stolen hash, and checking a request costs one SHA-256 per configured key.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

/// What a key may do. Each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Health, pods, history, audit, clusters.
    Read,
    /// Read, and run commands in pods.
    Exec,
    /// Exec, and register, update, remove and import pods.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Exec => "exec",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "exec" => Ok(Scope::Exec),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?} (expected read, exec or admin)"
            )),
        }
    }
}

/// One key as stored: its name, scope and the SHA-256 of the key (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub scope: Scope,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The `api-keys.toml` file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

/// The keys the daemon accepts.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<(String, Scope, [u8; 32])>,
}

/// The identity a presented key proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIdentity {
    pub name: String,
    pub scope: Scope,
}

/// SHA-256 of `key`, lowercase hex.
pub fn digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// A fresh random key: `pwk_` and 64 hex digits.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("pwk_{}", hex::encode(bytes))
}

/// Key names: letters, digits, `.`, `_`, `-`; 1 to 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "key name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

impl KeyRing {
    /// Builds the ring; names must be unique and digests well-formed.
    pub fn new(entries: &[KeyEntry]) -> Result<KeyRing, ConfigError> {
        let mut keys: Vec<(String, Scope, [u8; 32])> = Vec::new();
        for e in entries {
            check_name(&e.name).map_err(|r| invalid("api_keys", r))?;
            if keys.iter().any(|(n, _, _)| *n == e.name) {
                return Err(invalid(
                    "api_keys",
                    format!("key name {:?} is used twice", e.name),
                ));
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(e.sha256.trim(), &mut digest).map_err(|_| {
                invalid(
                    "api_keys",
                    format!("key {:?}: sha256 must be 64 hex digits", e.name),
                )
            })?;
            keys.push((e.name.clone(), e.scope, digest));
        }
        Ok(KeyRing { keys })
    }

    /// Adds a key given in clear (the `api_key` setting, `PODWRANGLER_API_KEY`).
    pub fn add_plain(&mut self, name: &str, scope: Scope, key: &str) {
        let digest: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
        self.keys.retain(|(n, _, _)| n != name);
        self.keys.push((name.to_owned(), scope, digest));
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key `presented` is, if any. Every digest is compared in full, so timing tells nothing
    /// about which key came close.
    pub fn authenticate(&self, presented: &str) -> Option<KeyIdentity> {
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let mut found = None;
        for (name, scope, stored) in &self.keys {
            if crate::auth::constant_time_eq(&digest, stored) && found.is_none() {
                found = Some(KeyIdentity {
                    name: name.clone(),
                    scope: *scope,
                });
            }
        }
        found
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a key file; a missing file holds no keys.
pub fn read_file(path: &Path) -> Result<KeyFile, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyFile::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

/// Writes a key file atomically with `mode`; the service group can read it when `group` is set.
pub fn write_file(
    path: &Path,
    file: &KeyFile,
    mode: u32,
    group: Option<u32>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "# PodWrangler TCP API keys: SHA-256 digests only. Managed by `podwranglerd key`.\n{}",
        toml::to_string(file).map_err(std::io::Error::other)?
    );
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    if let Some(gid) = group {
        std::os::unix::fs::chown(&tmp, Some(0), Some(gid))?;
    }
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_by_digest_with_their_scope() {
        let key = generate();
        assert!(key.starts_with("pwk_") && key.len() == 68);
        let ring = KeyRing::new(&[
            KeyEntry {
                name: "ci".into(),
                scope: Scope::Exec,
                sha256: digest_hex(&key),
                created_at: None,
            },
            KeyEntry {
                name: "ro".into(),
                scope: Scope::Read,
                sha256: digest_hex("other"),
                created_at: None,
            },
        ])
        .unwrap();
        assert_eq!(
            ring.authenticate(&key),
            Some(KeyIdentity {
                name: "ci".into(),
                scope: Scope::Exec
            })
        );
        assert_eq!(ring.authenticate("other").unwrap().scope, Scope::Read);
        assert_eq!(ring.authenticate("wrong"), None);
        assert!(Scope::Read < Scope::Exec && Scope::Exec < Scope::Admin);
    }

    #[test]
    fn bad_entries_are_refused() {
        let entry = |name: &str, sha: &str| KeyEntry {
            name: name.into(),
            scope: Scope::Read,
            sha256: sha.into(),
            created_at: None,
        };
        assert!(KeyRing::new(&[entry("a", "zz")]).is_err());
        assert!(KeyRing::new(&[entry("has space", &digest_hex("k"))]).is_err());
        let dup = [entry("a", &digest_hex("k")), entry("a", &digest_hex("j"))];
        assert!(KeyRing::new(&dup).is_err());
    }

    #[test]
    fn key_file_round_trips_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("api-keys.toml");
        assert_eq!(read_file(&path).unwrap(), KeyFile::default());
        let file = KeyFile {
            keys: vec![KeyEntry {
                name: "ci".into(),
                scope: Scope::Admin,
                sha256: digest_hex("k"),
                created_at: Some("2026-11-30T00:00:00Z".into()),
            }],
        };
        write_file(&path, &file, 0o600, None).unwrap();
        assert_eq!(read_file(&path).unwrap(), file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
