//! PodWrangler: run shell commands in Kubernetes pods over long-lived WebSocket shell sessions.
//!
//! The models, errors and REST wire types are always available; the session engine and the
//! providers that talk to pods are behind the `session` feature (on by default).

pub mod api;
pub mod error;
pub mod groups;
pub mod models;
pub mod nodeset;
pub mod secret;

pub use error::{PodError, Result};
pub use models::*;
pub use secret::{REDACTED, Secret, cleartext_refusal, is_loopback_host, redact_url};

#[cfg(feature = "kubeconfig")]
pub mod kubeconfig;
#[cfg(feature = "session")]
pub mod provider;
#[cfg(feature = "session")]
pub mod registry;
#[cfg(feature = "session")]
pub mod session;

#[cfg(feature = "session")]
pub use provider::{
    ConnectPlan, KubernetesProvider, PlainTtyProvider, Provider, endpoint_from_url, list_pods,
    provider_for,
};
#[cfg(feature = "session")]
pub use registry::PodRegistry;
#[cfg(feature = "session")]
pub use session::{CancelToken, OutputChunk, PodSession, RunOptions, SessionOptions};
