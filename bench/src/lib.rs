//! Shared by the baseline servers: the same allocator (musl's) and runtime set-up as the handler
//! (src/main.rs), so a ratio against a baseline measures the request path and nothing else.

/// Port from `FUNCTIONS_CUSTOMHANDLER_PORT` (as the host sets it).
pub fn port() -> u16 {
    std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080)
}

/// Runs `server` on the handler's runtime: Tokio's default, one worker per usable core.
pub fn run<F: std::future::Future<Output = ()>>(server: F) {
    tokio::runtime::Runtime::new().expect("tokio runtime").block_on(server);
}

/// Serves `router` on 127.0.0.1:`port()`.
pub async fn serve(router: axum::Router) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port())).await.expect("bind");
    axum::serve(listener, router).await.expect("serve");
}
