//! pwctl: the PodWrangler command-line client. A thin, blocking HTTP client of podwranglerd's
//! REST API over its Unix socket (or TCP); no session engine. The only async code is the
//! kubeconfig resolution (`kube`), run on a runtime of its own.

mod args;
mod audit;
mod cli;
mod client;
mod clusters;
mod config;
mod cp;
mod docs;
mod error;
mod exec;
mod fanout;
mod kube;
mod local;
mod output;
mod pods;
mod sets;
mod unix;

use argh::{ArgsInfo, FromArgs};

use crate::cli::{Command, ExecCommand, PodCommand, Pwctl, SetCommand};
use crate::client::Client;
use crate::config::{ConnectionFlags, Sources};
use crate::error::{CtlError, exit};

fn main() {
    // Like other Unix tools, die quietly on a closed pipe (`pwctl exec history | head`)
    // instead of panicking in println!.
    // SAFETY: resetting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = match run() {
        Ok(code) => code,
        Err(CtlError::Exit(code)) => code,
        Err(e) => {
            output::error_line(&e.to_string());
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn parse() -> Result<Pwctl, i32> {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv
        .first()
        .map(|p| {
            std::path::Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.clone())
        })
        .unwrap_or_else(|| "pwctl".into());
    let args = args::hoist_globals(&Pwctl::get_args_info(), &argv[1.min(argv.len())..]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Pwctl::from_args(&[&program], &refs).map_err(|early| match early.status {
        Ok(()) => {
            println!("{}", early.output);
            exit::OK
        }
        Err(()) => {
            eprintln!("{}", early.output.trim_end());
            eprintln!("Run {program} --help for more information.");
            exit::USAGE
        }
    })
}

fn run() -> Result<i32, CtlError> {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return Ok(code),
    };
    if cli.no_color {
        owo_colors::set_override(false);
    }
    if cli.version {
        println!("pwctl {}", env!("CARGO_PKG_VERSION"));
        return Ok(exit::OK);
    }
    let Some(command) = cli.command else {
        return Err(CtlError::Usage(
            "no command given (try pwctl --help, or pwctl health)".into(),
        ));
    };

    // Commands that need no daemon.
    match &command {
        Command::Completions(c) => {
            let script = match c.shell.as_str() {
                "bash" => docs::bash(),
                "zsh" => docs::zsh(),
                "fish" => docs::fish(),
                other => {
                    return Err(CtlError::Usage(format!(
                        "no completions for {other:?} (pick bash, zsh or fish)"
                    )));
                }
            };
            print!("{script}");
            return Ok(exit::OK);
        }
        Command::Man(_) => {
            print!("{}", docs::man());
            return Ok(exit::OK);
        }
        _ => {}
    }

    let flags = ConnectionFlags {
        socket: cli.socket.clone(),
        api_url: cli.api_url.clone(),
        api_key: cli.api_key.clone(),
    };
    let mut conn = config::resolve(&flags, &Sources::system())?;
    if cli.local {
        conn = local::ensure_daemon(&conn)?;
    }
    let client = Client::new(&conn);
    let json = cli.json;
    match command {
        Command::Health(_) => pods::health(&client, json),
        Command::Pod(p) => match p.command {
            PodCommand::List(c) => pods::list(&client, &c, json),
            PodCommand::Show(c) => pods::show(&client, &c, json),
            PodCommand::Add(c) => pods::add(&client, &c, json),
            PodCommand::Update(c) => pods::update(&client, &c, json),
            PodCommand::Remove(c) => pods::remove(&client, &c, json),
            PodCommand::Import(c) => pods::import(&client, &c, json),
        },
        Command::Exec(e) => match e.command {
            ExecCommand::Run(c) => exec::run(&client, &c, json),
            ExecCommand::RunMany(c) => exec::run_many(&client, &c, json),
            ExecCommand::History(c) => exec::history(&client, &c, json),
            ExecCommand::Show(c) => exec::show(&client, &c, json),
            ExecCommand::Job(c) => exec::job(&client, &c, json),
            ExecCommand::Jobs(c) => exec::jobs(&client, &c, json),
        },
        Command::Set(s) => match s.command {
            SetCommand::Add(c) => sets::add(&client, &c, json),
            SetCommand::List(_) => sets::list(&client, json),
            SetCommand::Show(c) => sets::show(&client, &c, json),
            SetCommand::Delete(c) => sets::delete(&client, &c, json),
        },
        Command::Audit(c) => audit::list(&client, &c, json),
        Command::Clusters(_) => clusters::list(&client, json),
        Command::Cp(c) => cp::run(&client, &c, json),
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
    }
}
