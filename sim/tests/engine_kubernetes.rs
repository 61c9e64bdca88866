//! The session engine against a real podsim through the Kubernetes provider: every trap of a
//! long-lived shell (framing, quoting, stdin, timeouts, caps, drops, ordering, redaction).

mod engine_support;

use engine_support::Kind;

const KIND: Kind = Kind::Kubernetes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_carries_over() {
    engine_support::state_carries_over(KIND).await;
}

#[tokio::test(flavor = "current_thread")]
async fn exit_codes_and_check() {
    engine_support::exit_codes_and_check(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoting_survives_any_text() {
    engine_support::quoting_survives_any_text(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_kib_command() {
    engine_support::hundred_kib_command(KIND).await;
}

#[tokio::test(flavor = "current_thread")]
async fn stdin_is_isolated() {
    engine_support::stdin_is_isolated(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_then_next_command() {
    engine_support::timeout_then_next_command(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_and_binary() {
    engine_support::output_cap_and_binary(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mid_command_with_auto_reconnect() {
    engine_support::drop_mid_command(KIND, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mid_command_without_auto_reconnect() {
    engine_support::drop_mid_command(KIND, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_between_commands() {
    engine_support::drop_between_commands(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_kills_the_shell() {
    engine_support::exit_kills_the_shell(KIND).await;
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_runs_queue_in_order() {
    engine_support::concurrent_runs_queue_in_order(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_redacted() {
    engine_support::tokens_are_redacted(KIND).await;
}

#[tokio::test(flavor = "current_thread")]
async fn ping_close_reconnect() {
    engine_support::ping_close_reconnect(KIND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_many_in_one_shell() {
    engine_support::run_many_in_one_shell(KIND).await;
}
