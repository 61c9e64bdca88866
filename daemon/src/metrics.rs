//! `GET /metrics`: the daemon's counters, gauges and histograms in the Prometheus text format.
//!
//! Instruments live in one process-wide [`Metrics`] (the daemon is one process); the code that
//! sees an event bumps it directly. Values that are state rather than events (pods by state, the
//! spool, the database) are read when a scrape comes in.

use std::sync::LazyLock;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::actors::registry::StateCounts;
use crate::api::error::ApiError;
use crate::auth::Transport;
use crate::server::AppState;

/// Every instrument the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// Pods by connection state (set at scrape time).
    pub pods: IntGaugeVec,
    /// Connection attempts by result (`ok`, `error`).
    pub connects: IntCounterVec,
    /// Connection attempts after a session was lost or a connect failed.
    pub reconnects: IntCounter,
    /// Command run time in the pod, by provider.
    pub exec_seconds: HistogramVec,
    /// Commands by final status.
    pub commands: IntCounterVec,
    /// Pods per fan-out.
    pub fanout_pods: Histogram,
    /// Commands queued behind a busy pod, waiting to start.
    pub queue_depth: IntGauge,
    /// API responses by HTTP status code (429s are pods that were busy).
    pub responses: IntCounterVec,
    /// History writes the database could not take (kept in the spool instead, or lost).
    pub history_write_failures: IntCounter,
    /// History writes waiting in the spool (set at scrape time).
    pub spool_pending: IntGauge,
    /// 1 while the database takes writes (set at scrape time).
    pub database_up: IntGauge,
    /// Time of one store request, by kind (`read`, `write`).
    pub database_seconds: HistogramVec,
}

/// The daemon's instruments.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

const NAMESPACE: &str = "podwrangler";

/// Pod states always present in `podwrangler_pods` (others appear when pods are in them).
const POD_STATES: [&str; 7] = [
    "idle",
    "waiting",
    "connecting",
    "ready",
    "busy",
    "backing_off",
    "failed",
];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn histogram_opts(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace(NAMESPACE)
        .buckets(buckets)
}

/// Seconds, from 1 ms to about 9 minutes.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 20).expect("valid bucket layout")
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            pods: IntGaugeVec::new(opts("pods", "Registered pods by state."), &["state"])
                .expect("valid metric"),
            connects: IntCounterVec::new(
                opts("connects_total", "Session connection attempts by result."),
                &["result"],
            )
            .expect("valid metric"),
            reconnects: IntCounter::with_opts(opts(
                "reconnects_total",
                "Connection attempts after a session was lost or a connect failed.",
            ))
            .expect("valid metric"),
            exec_seconds: HistogramVec::new(
                histogram_opts(
                    "exec_duration_seconds",
                    "Time a command ran in its pod, by provider.",
                    latency_buckets(),
                ),
                &["provider"],
            )
            .expect("valid metric"),
            commands: IntCounterVec::new(
                opts("commands_total", "Finished commands by status."),
                &["status"],
            )
            .expect("valid metric"),
            fanout_pods: Histogram::with_opts(histogram_opts(
                "fanout_pods",
                "Pods per fan-out.",
                vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
            ))
            .expect("valid metric"),
            queue_depth: IntGauge::with_opts(opts(
                "exec_queue_depth",
                "Commands waiting for a busy pod.",
            ))
            .expect("valid metric"),
            responses: IntCounterVec::new(
                opts("http_responses_total", "API responses by status code."),
                &["code"],
            )
            .expect("valid metric"),
            history_write_failures: IntCounter::with_opts(opts(
                "history_write_failures_total",
                "History writes the database could not take.",
            ))
            .expect("valid metric"),
            spool_pending: IntGauge::with_opts(opts(
                "spool_pending",
                "History writes waiting in the spool for the database.",
            ))
            .expect("valid metric"),
            database_up: IntGauge::with_opts(opts(
                "database_up",
                "1 while the history database takes writes.",
            ))
            .expect("valid metric"),
            database_seconds: HistogramVec::new(
                histogram_opts(
                    "database_duration_seconds",
                    "Time of one history store request, by kind.",
                    prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid bucket layout"),
                ),
                &["kind"],
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.pods.clone()),
            Box::new(m.connects.clone()),
            Box::new(m.reconnects.clone()),
            Box::new(m.exec_seconds.clone()),
            Box::new(m.commands.clone()),
            Box::new(m.fanout_pods.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.responses.clone()),
            Box::new(m.history_write_failures.clone()),
            Box::new(m.spool_pending.clone()),
            Box::new(m.database_up.clone()),
            Box::new(m.database_seconds.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        m
    }

    /// Observes a command's run time.
    pub fn observe_exec(&self, provider: &str, took: Duration) {
        self.exec_seconds
            .with_label_values(&[provider])
            .observe(took.as_secs_f64());
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on an invalid family, which `new` cannot build.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts one queued command for as long as it lives (dropped when it starts or is dropped).
#[derive(Debug)]
pub struct QueuedCommand(());

impl QueuedCommand {
    pub fn new() -> Self {
        METRICS.queue_depth.inc();
        QueuedCommand(())
    }
}

impl Default for QueuedCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for QueuedCommand {
    fn drop(&mut self) {
        METRICS.queue_depth.dec();
    }
}

/// Daemon metrics in the Prometheus text format. Always served on the Unix socket; on TCP only
/// when `metrics_on_tcp = true` (and then with a key, like every TCP route).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "daemon",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4)", content_type = "text/plain", body = String),
        (status = 401, description = "TCP request without a valid API key", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Metrics are not served on TCP (`metrics_on_tcp = false`)", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let over_tcp = !matches!(req.conn_data::<Transport>(), Some(Transport::Unix { .. }));
    if over_tcp && !state.config.metrics_on_tcp {
        return Err(ApiError::NotFound(format!(
            "{} (metrics are served on TCP only with metrics_on_tcp = true)",
            req.path()
        )));
    }
    let m = &*METRICS;
    let counts = state.registry.send(StateCounts).await.unwrap_or_default();
    m.pods.reset();
    // Known states show as 0 rather than vanish, so dashboards and alerts see them.
    for pod_state in POD_STATES {
        m.pods.with_label_values(&[pod_state]).set(0);
    }
    for (pod_state, n) in counts {
        m.pods.with_label_values(&[&pod_state]).set(n as i64);
    }
    m.spool_pending
        .set(state.store_health.spool_pending() as i64);
    m.database_up.set(i64::from(state.store_health.ok()));
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(m.render()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_the_namespace() {
        METRICS.connects.with_label_values(&["ok"]).inc();
        METRICS.observe_exec("kubernetes", Duration::from_millis(3));
        let text = METRICS.render();
        assert!(
            text.contains("# TYPE podwrangler_connects_total counter"),
            "{text}"
        );
        assert!(
            text.contains("podwrangler_connects_total{result=\"ok\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "podwrangler_exec_duration_seconds_bucket{provider=\"kubernetes\",le=\"0.004\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn queued_commands_count_while_they_live() {
        let before = METRICS.queue_depth.get();
        let a = QueuedCommand::new();
        let b = QueuedCommand::new();
        assert_eq!(METRICS.queue_depth.get(), before + 2);
        drop(a);
        drop(b);
        assert_eq!(METRICS.queue_depth.get(), before);
    }
}
