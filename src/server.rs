//! Start-up: everything between a parsed [`Config`] and a served socket.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::app::{AppState, app};
use crate::auth::Authenticator;
use crate::config::Config;
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

/// Builds the shared state from configuration (reads the app root; fetches nothing).
pub fn build_state(config: &Config) -> Result<AppState, StartupError> {
    let layout = AppLayout::load(&config.app_root)?;
    if layout.functions.is_empty() {
        return Err(StartupError::NoFunctions(config.app_root.display().to_string()));
    }
    let auth = Authenticator::new(&config.auth).map_err(StartupError::Keys)?;
    Ok(AppState::new(auth, layout, config.max_body_bytes)?)
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
