//! The pod registry: an alias -> endpoint catalogue (the seed's `PodRegistry`), from which
//! sessions are opened.

use std::collections::BTreeMap;

use crate::error::{PodError, Result};
use crate::models::{PodEndpoint, ProviderKind};
use crate::provider::endpoint_from_url;
use crate::session::{PodSession, SessionOptions};

/// Alias -> endpoint. Aliases are kept sorted.
#[derive(Clone, Debug, Default)]
pub struct PodRegistry {
    pods: BTreeMap<String, PodEndpoint>,
    options: SessionOptions,
}

impl PodRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry whose sessions use `options`.
    pub fn with_options(options: SessionOptions) -> Self {
        PodRegistry {
            pods: BTreeMap::new(),
            options,
        }
    }

    fn check_alias(alias: &str) -> Result<()> {
        if alias.trim().is_empty() {
            return Err(PodError::ConfigValidation {
                field: "alias".into(),
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }

    /// Add or replace `alias`; returns the endpoint it replaced.
    pub fn register(
        &mut self,
        alias: impl Into<String>,
        endpoint: PodEndpoint,
    ) -> Result<Option<PodEndpoint>> {
        let alias = alias.into();
        Self::check_alias(&alias)?;
        Ok(self.pods.insert(alias, endpoint))
    }

    /// Parse a provider URL and register it under `alias`.
    pub fn register_from_url(
        &mut self,
        alias: impl Into<String>,
        url: &str,
        kind: ProviderKind,
    ) -> Result<&PodEndpoint> {
        let alias = alias.into();
        Self::check_alias(&alias)?;
        let endpoint = endpoint_from_url(kind, url)?;
        self.pods.insert(alias.clone(), endpoint);
        Ok(&self.pods[&alias])
    }

    pub fn get(&self, alias: &str) -> Result<&PodEndpoint> {
        self.pods.get(alias).ok_or_else(|| PodError::NotFound {
            alias: alias.to_owned(),
        })
    }

    pub fn remove(&mut self, alias: &str) -> Result<PodEndpoint> {
        self.pods.remove(alias).ok_or_else(|| PodError::NotFound {
            alias: alias.to_owned(),
        })
    }

    pub fn contains(&self, alias: &str) -> bool {
        self.pods.contains_key(alias)
    }

    /// Registered aliases, sorted.
    pub fn aliases(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &PodEndpoint)> {
        self.pods.iter()
    }

    /// Connect a session to the pod registered as `alias`.
    pub async fn session(&self, alias: &str) -> Result<PodSession> {
        let endpoint = self.get(alias)?.clone();
        PodSession::connect(endpoint, self.options.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_get_remove() {
        let mut r = PodRegistry::new();
        r.register_from_url(
            "web-2",
            "wss://h/exec/1/?token=T&cols=220&pod=web-abc-x2",
            ProviderKind::PlainTty,
        )
        .unwrap();
        r.register_from_url(
            "web-1",
            "wss://h/exec/1/?token=T&cols=220&pod=web-abc-x1",
            ProviderKind::PlainTty,
        )
        .unwrap();
        assert_eq!(r.aliases(), vec!["web-1", "web-2"]);
        assert_eq!(r.get("web-1").unwrap().identity.pod_name, "web-abc-x1");
        assert!(matches!(r.get("nope"), Err(PodError::NotFound { .. })));
        r.remove("web-1").unwrap();
        assert!(matches!(r.remove("web-1"), Err(PodError::NotFound { .. })));
        assert_eq!(r.len(), 1);
        assert!(r.register("  ", r.get("web-2").unwrap().clone()).is_err());
        assert!(!format!("{r:?}").contains("token=T"));
    }
}
