//! podwranglerd as a library: the daemon's modules, so integration tests and benches can use them.

pub mod actors;
pub mod api;
pub mod auth;
pub mod clusters;
pub mod config;
pub mod fds;
pub mod files;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod retention;
pub mod server;
pub mod sets;
pub mod store;
