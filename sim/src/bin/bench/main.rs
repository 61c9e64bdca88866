//! PodWrangler benchmarks against a podsim it starts itself.
//!
//! `cargo run --release -p podsim --bin bench -- engine` measures the session engine for both
//! providers, `-- daemon` podwranglerd (latency, fan-out against kubectl, memory per pod) and
//! `-- history` the history store with a million rows, `-- sets` pod sets at scale
//! (10,000 pods through a pod set) and under churn (a rollout while fan-outs run), `-- files` pwctl as a whole process
//! (file copies against `kubectl cp`, streaming throughput and memory, one `exec run` against
//! `kubectl exec`). Each benchmark is a subcommand in its own module, so more can be added beside it.

mod daemon;
mod daemon_proc;
mod engine;
mod files;
mod history;
mod history_store;
mod http;
mod podsim_proc;
mod sets;
mod table;
mod xargs;

use argh::FromArgs;

/// PodWrangler benchmarks (they start their own podsim).
#[derive(FromArgs)]
struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Engine(engine::EngineArgs),
    Daemon(daemon::DaemonArgs),
    History(history::HistoryArgs),
    Sets(sets::SetsArgs),
    Files(files::FilesArgs),
}

fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    match args.command {
        Command::Engine(a) => engine::main(a),
        Command::Daemon(a) => daemon::main(a),
        Command::History(a) => history::main(a),
        Command::Sets(a) => sets::main(a),
        Command::Files(a) => files::main(a),
    }
}
