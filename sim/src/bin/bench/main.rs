//! PodWrangler benchmarks against a podsim it starts itself.
//!
//! `cargo run --release -p podsim --bin bench -- engine` measures the session engine for both
//! providers. Each benchmark is a subcommand in its own module, so more can be added beside it.

mod daemon;
mod engine;
mod podsim_proc;

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
}

fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    match args.command {
        Command::Engine(a) => engine::main(a),
        Command::Daemon(a) => daemon::main(a),
    }
}
