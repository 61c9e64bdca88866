//! The benchmarks' HTTP client is testkit's keep-alive client for the daemon's Unix socket (one
//! client for tests and benchmarks), so they time requests, not connection set-up.

pub use testkit::http::UnixClient;
