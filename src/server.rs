//! Start-up: everything between a parsed [`Config`] and a served socket.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::app::{AppState, app};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::functions::{self, Functions};
use crate::layout::AppLayout;

/// A start-up failure; the message names the setting or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A bad environment variable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A bad host.json or function.json.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// A function folder without a handler.
    #[error(transparent)]
    UnknownFunction(#[from] crate::app::UnknownFunction),
    /// No function folder at all.
    #[error("FUNCTIONS_APP_ROOT_PATH: no */function.json found under {0}")]
    NoFunctions(String),
    /// Keys could not be set up (e.g. `AUTH_PUBLIC_KEY`).
    #[error("AUTH_PUBLIC_KEY: {0}")]
    Keys(String),
    /// The port could not be bound.
    #[error("FUNCTIONS_CUSTOMHANDLER_PORT: cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Builds the shared state for the built-in functions (reads the app root; fetches nothing).
pub fn build_state(config: &Config) -> Result<AppState, StartupError> {
    build_state_with(config, functions::builtin())
}

/// Builds the shared state for an app's own functions.
pub fn build_state_with(config: &Config, functions: Functions) -> Result<AppState, StartupError> {
    let layout = AppLayout::load(&config.app_root)?;
    if layout.functions.is_empty() {
        return Err(StartupError::NoFunctions(config.app_root.display().to_string()));
    }
    let auth = Authenticator::new(&config.auth).map_err(StartupError::Keys)?;
    Ok(AppState::with_functions(auth, layout, functions, config.max_body_bytes)?)
}

/// The whole process for an app: logging, settings from the environment, start-up, serve
/// until Ctrl-C/SIGTERM (Ctrl-Break on Windows). Returns the exit code (non-zero after a start-up failure, so the
/// host restarts the worker). An app's `main` is one line:
/// `std::process::exit(azfn_auth::server::run(functions))`.
pub fn run(functions: Functions) -> i32 {
    if std::env::args().skip(1).any(|a| a == "--openapi") {
        return print_openapi();
    }
    crate::telemetry::init();
    // Tokio's default runtime (as `#[tokio::main]`): one worker per usable core. Pinned to
    // one core, the single-threaded scheduler measured the same (scripts/bench.sh).
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(start_and_serve(functions)),
        Err(error) => {
            eprintln!("handler: start-up failed: cannot start the async runtime: {error}");
            1
        }
    };
    // Lines are written in batches (src/telemetry.rs): write out the last ones.
    crate::telemetry::flush();
    code
}

/// `--openapi`: the app's OpenAPI document on stdout (see [`crate::openapi`]), from the app
/// root (`FUNCTIONS_APP_ROOT_PATH`, else the current directory) and, when the settings are
/// complete, the configured issuer; otherwise a generic bearer scheme, said on stderr.
fn print_openapi() -> i32 {
    let config = Config::from_env();
    let root = match &config {
        Ok(config) => config.app_root.clone(),
        Err(error) => {
            eprintln!("handler: --openapi without the issuer settings ({error}): a generic bearer scheme stands in");
            match std::env::var_os("FUNCTIONS_APP_ROOT_PATH")
                .map(std::path::PathBuf::from)
                .or_else(|| std::env::current_dir().ok())
            {
                Some(root) => root,
                None => return 1,
            }
        }
    };
    let layout = match AppLayout::load(&root) {
        Ok(layout) => layout,
        Err(error) => {
            eprintln!("handler: --openapi: {error}");
            return 1;
        }
    };
    let title = root.canonicalize().ok().and_then(|r| r.file_name().map(|n| n.to_string_lossy().into_owned()));
    let document =
        crate::openapi::document(&layout, config.as_ref().ok().map(|c| &c.auth), title.as_deref().unwrap_or("app"));
    match serde_json::to_string_pretty(&document) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(_) => 1,
    }
}

async fn start_and_serve(functions: Functions) -> i32 {
    let started = async {
        let config = Config::from_env()?;
        let state = build_state_with(&config, functions)?;
        let listener = bind(&config).await?;
        Ok::<_, StartupError>((listener, state))
    };
    let (listener, state) = match started.await {
        Ok(ready) => ready,
        Err(error) => {
            // stderr: the host shows it as an error; exit non-zero so the host restarts us.
            eprintln!("handler: start-up failed: {error}");
            return 1;
        }
    };
    match serve(listener, state, shutdown_signal()).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("handler: server failed: {error}");
            1
        }
    }
}

/// Ctrl-C (every OS), SIGTERM (Unix), Ctrl-Break, console close or system shutdown (Windows):
/// local runs under `func start` or a terminal. The host itself kills the worker (SIGKILL on
/// Linux, TerminateProcess on Windows); nothing relies on this. A signal that cannot be
/// registered never fires, so a registration failure can never stop the server by itself.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    };
    let signal = tokio::select! {
        name = ctrl_c => name,
        name = platform_stop() => name,
    };
    info!(signal, "stopping: finishing the requests in flight");
}

/// Waits for the stop event that `$register` (an `io::Result` of a tokio signal stream)
/// listens for, then yields `$name`; never fires if it could not be registered.
#[cfg(any(unix, windows))]
macro_rules! stop_event {
    ($register:expr, $name:literal) => {
        async {
            match $register {
                Ok(mut event) => {
                    event.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
            $name
        }
    };
}

#[cfg(unix)]
async fn platform_stop() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    stop_event!(signal(SignalKind::terminate()), "SIGTERM").await
}

/// Windows has no SIGTERM: a console program is asked to stop with console control events.
/// After Ctrl-Close and Ctrl-Shutdown Windows ends the process itself within seconds.
#[cfg(windows)]
async fn platform_stop() -> &'static str {
    use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
    tokio::select! {
        name = stop_event!(ctrl_break(), "Ctrl-Break") => name,
        name = stop_event!(ctrl_close(), "console close") => name,
        name = stop_event!(ctrl_shutdown(), "system shutdown") => name,
    }
}

#[cfg(not(any(unix, windows)))]
async fn platform_stop() -> &'static str {
    std::future::pending().await
}

/// Binds `127.0.0.1:<port>` (the host always calls IPv4 loopback).
pub async fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })
}

/// Serves until `shutdown` completes. Key fetching starts in the background, so the port
/// answers the host's readiness probe at once.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(state);
    // Snapshots in the storage account are read before the first fetch and the first request.
    state.auth.load_shared_snapshots().await;
    state.auth.spawn_refreshers();
    info!(
        addr = %listener.local_addr()?,
        mode = ?state.layout.mode,
        route_prefix = %state.layout.route_prefix,
        functions = ?state.layout.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "handler listening"
    );
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}
