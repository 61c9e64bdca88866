//! podwranglerd as a library: the daemon's modules, so integration tests and benches can use them.

pub mod actors;
pub mod api;
pub mod auth;
pub mod clusters;
pub mod config;
pub mod files;
pub mod keys;
pub mod logging;
pub mod openapi;
pub mod server;
pub mod sets;
pub mod store;
