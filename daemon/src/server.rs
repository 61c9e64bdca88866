//! The HTTP server and the daemon's life: listeners (TCP, Unix socket, or systemd's), start-up,
//! readiness, SIGHUP reload and the SIGTERM drain.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix::prelude::*;
use actix_web::{App, HttpServer, middleware, web};
use tokio::signal::unix::{SignalKind, signal};

use crate::actors::registry::{RegistryActor, RetireAll};
use crate::api::body::BodyLimit;
use crate::auth;
use crate::clusters::ClusterSet;
use crate::config::{Args, Config, Mode};
use crate::keys::KeyRing;
use crate::logging::LogControl;
use crate::store::{self, InterruptRunning, StoreActor};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("HTTP server failed: {0}")]
    Server(std::io::Error),
}

/// What every handler shares.
pub struct AppState {
    /// How the open-file limit is shared (for `/health`).
    pub fd_budget: Arc<crate::fds::FdBudget>,
    pub config: Config,
    pub store: Addr<StoreActor>,
    pub backend: String,
    /// Whether database writes work and how much history waits in the spool.
    pub store_health: Arc<store::StoreHealth>,
    pub registry: Addr<RegistryActor>,
    pub started: Instant,
    pub shutting_down: AtomicBool,
    /// The API keys TCP callers may present; replaced on SIGHUP.
    pub keys: std::sync::RwLock<KeyRing>,
    /// Clusters named by the administrator; replaced on SIGHUP.
    pub clusters: Arc<ClusterSet>,
    /// Pod sets and their watches.
    pub sets: Arc<crate::sets::SetManager>,
}

impl AppState {
    /// The current API keys.
    pub fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The listeners the server accepts on, bound before the server starts.
pub struct Listeners {
    pub tcp: Option<TcpListener>,
    pub unix: Option<(UnixListener, PathBuf)>,
    /// True when systemd passed them (the socket file is then systemd's to manage).
    pub activated: bool,
}

/// The `--ready-file` contents.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ReadyInfo {
    pub tcp: Option<String>,
    pub socket: Option<String>,
    pub pid: u32,
}

/// Binds the configured listeners, or takes the ones systemd passed (`LISTEN_FDS`).
pub fn bind_listeners(config: &Config) -> Result<Listeners, ServeError> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .map_err(|e| ServeError::Setup(format!("bad LISTEN_FDS from systemd: {e}")))?
        .collect();
    if !fds.is_empty() {
        return from_systemd(&fds);
    }
    let tcp = match &config.tcp {
        Some(addr) => Some(
            TcpListener::bind(addr).map_err(|source| ServeError::Listen {
                what: format!("TCP {addr}"),
                source,
            })?,
        ),
        None => None,
    };
    let unix = match &config.socket {
        Some(path) => Some((bind_socket(path, socket_mode(config.mode))?, path.clone())),
        None => None,
    };
    Ok(Listeners {
        tcp,
        unix,
        activated: false,
    })
}

fn from_systemd(fds: &[RawFd]) -> Result<Listeners, ServeError> {
    let mut listeners = Listeners {
        tcp: None,
        unix: None,
        activated: true,
    };
    for &fd in fds {
        match socket_family(fd) {
            Some(libc::AF_UNIX) => {
                // SAFETY: systemd passed this fd to us and nothing else owns it.
                let l = unsafe { UnixListener::from_raw_fd(fd) };
                let path = l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                    .unwrap_or_else(|| PathBuf::from("(systemd socket)"));
                listeners.unix = Some((l, path));
            }
            Some(libc::AF_INET | libc::AF_INET6) => {
                // SAFETY: as above.
                listeners.tcp = Some(unsafe { TcpListener::from_raw_fd(fd) });
            }
            other => {
                return Err(ServeError::Setup(format!(
                    "systemd passed fd {fd} of unsupported socket family {other:?}"
                )));
            }
        }
    }
    Ok(listeners)
}

fn socket_family(fd: RawFd) -> Option<i32> {
    // SAFETY: getsockname writes at most `len` bytes into the zeroed storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        Some(storage.ss_family as i32)
    }
}

/// The socket's mode: the service's socket group may connect in system mode; in user mode only
/// the user may.
fn socket_mode(mode: Mode) -> u32 {
    match mode {
        Mode::System => 0o660,
        Mode::User => 0o600,
    }
}

/// Creates the socket's directory (0700 when the daemon creates it), removes a stale socket,
/// binds and sets `mode`.
fn bind_socket(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Listen {
        what: format!("Unix socket {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        crate::files::create_private_dir(dir).map_err(err)?;
    }
    if path.exists() {
        // A live daemon answers on it; refuse to steal its socket.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another daemon is listening on it",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

/// Writes the ready file atomically (temp file + rename).
fn write_ready_file(path: &Path, info: &ReadyInfo) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(info)?)?;
    std::fs::rename(tmp, path)
}

/// Builds the app served on every listener.
pub fn configure_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = BodyLimit(state.config.max_body_bytes);
    App::new()
        .app_data(state)
        .app_data(limit)
        .app_data(crate::api::path_config())
        .app_data(crate::api::query_config())
        .configure(crate::api::routes)
        .wrap(middleware::from_fn(auth::authenticate))
        .wrap(middleware::from_fn(count_responses))
        .wrap(middleware::Logger::new("%r %s %Dms").log_target("podwranglerd::http"))
}

/// Middleware: counts every response by status code for `/metrics` (outermost, so refusals by
/// the authentication layer count too).
async fn count_responses(
    req: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let res = next.call(req).await;
    let code = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    crate::metrics::METRICS
        .responses
        .with_label_values(&[code.as_str()])
        .inc();
    res
}

/// Runs the daemon until SIGTERM/SIGINT. Call inside an actix `System`.
pub async fn serve(config: Config, args: Args, log: LogControl) -> Result<(), ServeError> {
    let handle = store::start_with(&store::StoreOptions {
        database_url: config.database_url.clone(),
        threads: config.store_threads,
        spool_path: Some(config.spool_path.clone()),
        retry_every: config.spool_retry,
    })?;
    if let Some(spool) = &handle.spool {
        tracing::info!(spool = %spool.path().display(), pending = spool.pending(), "history spool ready");
    }
    let clusters = ClusterSet::new(config.clusters.clone());
    crate::retention::spawn(handle.addr.clone(), config.history.clone());
    let mut pod_settings = config.pods.clone();
    let fd_budget = Arc::new(crate::fds::FdBudget::current());
    tracing::info!(
        limit = fd_budget.limit,
        reserve = fd_budget.reserve,
        sessions = fd_budget.sessions,
        "open-file budget: pod sessions beyond it wait (state waiting_open_files)"
    );
    pod_settings.session_slots = fd_budget.slots.clone();
    pod_settings.side_exec_slots = Some(fd_budget.side_slots.clone());
    pod_settings.kubernetes = Arc::new(podwrangler::KubernetesProvider::with_clusters(
        clusters.clone(),
    ));
    if handle.interrupted_at_start > 0 {
        tracing::warn!(
            rows = handle.interrupted_at_start,
            "commands left running by the previous run were marked interrupted"
        );
    }
    let arbiters: Vec<ArbiterHandle> = (0..config.pod_arbiters)
        .map(|_| Arbiter::new().handle())
        .collect();
    let registry = RegistryActor::new(
        handle.addr.clone(),
        Arc::new(pod_settings),
        arbiters.clone(),
    )
    .start();

    let state = web::Data::new(AppState {
        fd_budget,
        store: handle.addr.clone(),
        backend: handle.backend.to_string(),
        store_health: handle.health.clone(),
        registry: registry.clone(),
        started: Instant::now(),
        shutting_down: AtomicBool::new(false),
        keys: std::sync::RwLock::new(config.keys.clone()),
        clusters,
        sets: Default::default(),
        config: config.clone(),
    });
    let loaded = crate::api::pods::load_from_store(&state)
        .await
        .map_err(|e| ServeError::Setup(format!("cannot load pods from the database: {e}")))?;
    let applied = crate::api::pods::apply_config_pods(&state, &config.config_pods).await;
    let sets = crate::sets::start_all(&state)
        .await
        .map_err(|e| ServeError::Setup(format!("cannot load pod sets from the database: {e}")))?;
    tracing::info!(pods = loaded, config_pods = applied, sets, "pods loaded");

    let listeners = bind_listeners(&config)?;
    let grace = config.grace_period;
    let app_state = state.clone();
    let mut server = HttpServer::new(move || configure_app(app_state.clone()))
        .on_connect(auth::mark_transport)
        .disable_signals()
        .shutdown_timeout(grace.as_secs_f64().ceil() as u64)
        .workers(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4),
        );
    let mut ready = ReadyInfo {
        tcp: None,
        socket: None,
        pid: std::process::id(),
    };
    if let Some(l) = listeners.tcp {
        let addr = l.local_addr().map_err(|source| ServeError::Listen {
            what: "TCP".into(),
            source,
        })?;
        ready.tcp = Some(addr.to_string());
        server = server.listen(l).map_err(|source| ServeError::Listen {
            what: format!("TCP {addr}"),
            source,
        })?;
    }
    let socket_path = listeners.unix.as_ref().map(|(_, p)| p.clone());
    if let Some((l, path)) = listeners.unix {
        ready.socket = Some(path.display().to_string());
        server = server.listen_uds(l).map_err(|source| ServeError::Listen {
            what: format!("Unix socket {}", path.display()),
            source,
        })?;
    }
    let server = server.run();
    let server_handle = server.handle();

    tracing::info!(
        tcp = ready.tcp.as_deref().unwrap_or("off"),
        socket = ready.socket.as_deref().unwrap_or("off"),
        activated = listeners.activated,
        version = env!("CARGO_PKG_VERSION"),
        "podwranglerd ready"
    );
    if let Some(path) = &config.ready_file
        && let Err(e) = write_ready_file(path, &ready)
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the ready file");
    }
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify READY failed");
    }

    let mut term = signal(SignalKind::terminate()).map_err(|e| ServeError::Setup(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| ServeError::Setup(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| ServeError::Setup(e.to_string()))?;
    let reload_state = state.clone();
    actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            reload(&reload_state, &args, &log).await;
        }
    });
    let drain_state = state.clone();
    let drain = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        drain_state.shutting_down.store(true, Ordering::SeqCst);
        // Stops accepting at once; in-flight requests get the grace period to finish.
        server_handle.stop(true).await;
    };
    let server_result = tokio::select! {
        r = server => r,
        _ = drain => Ok(()),
    };
    shutdown(&state, socket_path.filter(|_| !listeners.activated)).await;
    for a in arbiters {
        a.stop();
    }
    server_result.map_err(ServeError::Server)
}

/// After the server stopped: close sessions, mark what is still running as interrupted.
async fn shutdown(state: &AppState, socket: Option<PathBuf>) {
    // Set members stay registered for the next start; only their watches stop.
    state.sets.stop_all();
    let retire = state.registry.send(RetireAll);
    if tokio::time::timeout(std::time::Duration::from_secs(5), retire)
        .await
        .is_err()
    {
        tracing::warn!("some pod sessions did not close within 5s");
    }
    // A last chance for history waiting in the spool; what remains is replayed at next start.
    if state.store_health.spool_pending() > 0 {
        let replay = state.store.send(store::Maintain);
        match tokio::time::timeout(std::time::Duration::from_secs(10), replay).await {
            Ok(Ok(r)) if r.remaining > 0 => {
                tracing::warn!(
                    pending = r.remaining,
                    "history left in the spool for the next start"
                )
            }
            Ok(_) => {}
            Err(_) => tracing::warn!("history spool replay did not finish within 10s"),
        }
    }
    match state.store.send(InterruptRunning { ids: None }).await {
        Ok(Ok(n)) if n > 0 => {
            tracing::warn!(commands = n, "marked unfinished commands interrupted")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot mark unfinished commands interrupted"),
        Err(e) => tracing::error!(error = %e, "store unavailable at shutdown"),
    }
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("podwranglerd stopped");
}

/// SIGHUP: re-read the config file; apply the log level and the configured pods.
async fn reload(state: &AppState, args: &Args, log: &LogControl) {
    match Config::load(args) {
        Ok(new) => {
            if let Err(e) = log.set_level(&new.log_level) {
                tracing::error!(error = %e, "SIGHUP: cannot apply log level");
            }
            *state.keys.write().unwrap_or_else(|e| e.into_inner()) = new.keys.clone();
            state.clusters.replace(new.clusters.clone()).await;
            let applied = crate::api::pods::apply_config_pods(state, &new.config_pods).await;
            tracing::info!(level = %new.log_level, config_pods = applied, keys = new.keys.len(), clusters = new.clusters.len(), "SIGHUP: configuration reloaded");
        }
        Err(e) => tracing::error!(error = %e, "SIGHUP: configuration not reloaded"),
    }
}
