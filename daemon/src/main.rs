//! podwranglerd: the PodWrangler daemon (flags, logging, then the server until SIGTERM).

use anyhow::Context as _;
use podwranglerd::config::{Args, Command, Config, KeyAction, Mode};
use podwranglerd::keys::{KeyEntry, KeyFile};
use podwranglerd::{files, logging, server};

fn main() -> anyhow::Result<()> {
    let args: Args = argh::from_env();
    if args.version {
        eprintln!("podwranglerd {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    // Everything the daemon creates (database, socket directory, key files) is its own.
    files::restrict_umask();
    if let Some(Command::Key(key)) = &args.command {
        return manage_keys(&args, &key.action);
    }
    let config = Config::load(&args).context("invalid configuration")?;
    if args.check_config {
        eprintln!("{}\nconfiguration OK", config.summary());
        return Ok(());
    }
    let log = logging::init(&config.log_level, config.log_json);
    tracing::info!(
        mode = ?config.mode,
        config = %config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()),
        database = %podwrangler::redact_url(&config.database_url),
        "starting podwranglerd"
    );
    // Every pod session holds a socket: a thousand pods need more than the usual 1,024.
    match podwrangler::session::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let system = actix_rt::System::new();
    let result = system.block_on(server::serve(config, args, log));
    if let Err(e) = &result {
        tracing::error!(error = %e, "podwranglerd failed");
    }
    result.context("podwranglerd failed")
}

/// `podwranglerd key add|list|revoke`: edits the key file the daemon reads (on start and SIGHUP).
fn manage_keys(args: &Args, action: &KeyAction) -> anyhow::Result<()> {
    let mode = podwranglerd::config::detect_mode(args);
    let path = podwranglerd::config::keys_file_for(args, mode)?;
    let mut file = podwranglerd::keys::read_file(&path)?;
    match action {
        KeyAction::List(_) => {
            for k in &file.keys {
                println!(
                    "{}\t{}\t{}",
                    k.name,
                    k.scope.as_str(),
                    k.created_at.as_deref().unwrap_or("-")
                );
            }
            return Ok(());
        }
        KeyAction::Add(add) => {
            podwranglerd::keys::check_name(&add.name).map_err(anyhow::Error::msg)?;
            if file.keys.iter().any(|k| k.name == add.name) {
                anyhow::bail!(
                    "a key named {:?} exists in {}; revoke it first",
                    add.name,
                    path.display()
                );
            }
            let key = podwranglerd::keys::generate();
            file.keys.push(KeyEntry {
                name: add.name.clone(),
                scope: add.scope,
                sha256: podwranglerd::keys::digest_hex(&key),
                created_at: Some(chrono::Utc::now().to_rfc3339()),
            });
            save_keys(&path, &file, mode)?;
            eprintln!(
                "added key {:?} with scope {} to {}; reload the daemon (SIGHUP) to apply. The key is shown once:",
                add.name,
                add.scope.as_str(),
                path.display()
            );
            println!("{key}");
        }
        KeyAction::Revoke(revoke) => {
            let before = file.keys.len();
            file.keys.retain(|k| k.name != revoke.name);
            if file.keys.len() == before {
                anyhow::bail!("no key named {:?} in {}", revoke.name, path.display());
            }
            save_keys(&path, &file, mode)?;
            eprintln!(
                "revoked key {:?} in {}; reload the daemon (SIGHUP) to apply",
                revoke.name,
                path.display()
            );
        }
    }
    Ok(())
}

/// System mode: root-owned, readable by the service group (0640 root:podwrangler). User mode:
/// the user's own (0600).
fn save_keys(path: &std::path::Path, file: &KeyFile, mode: Mode) -> anyhow::Result<()> {
    let group = match mode {
        Mode::System => podwranglerd::files::group_id(podwranglerd::config::SERVICE_GROUP),
        Mode::User => None,
    };
    let file_mode = if group.is_some() { 0o640 } else { 0o600 };
    podwranglerd::keys::write_file(path, file, file_mode, group)
        .with_context(|| format!("cannot write {}", path.display()))
}
