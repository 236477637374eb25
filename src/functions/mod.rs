//! How an app hands its business functions to the handler: ordinary axum handlers (or
//! `MethodRouter`s such as `get(list).post(create)`), or any ready tower service (an axum
//! `Router`, an MCP SDK's Streamable HTTP service, `tower_http`'s `ServeDir`), registered by
//! function (folder) name in [`Functions`]. The built-in `handler` binary serves [`builtin`]: one file per Azure
//! function (folder `api-a` ↔ module `api_a`).
//!
//! ```no_run
//! use azfn_auth::extract::Path;
//! use azfn_auth::functions::Functions;
//! use azfn_auth::auth::Claims;
//!
//! async fn get_order(claims: Claims, Path(id): Path<u32>) -> String {
//!     format!("order {id} for {}", claims.subject().unwrap_or("-"))
//! }
//!
//! let functions = Functions::new().function("orders-get", get_order);
//! std::process::exit(azfn_auth::server::run(functions));
//! ```

pub mod api_a;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceExt};

/// A registered handler with its state applied, ready to serve requests.
pub(crate) type BoxedHandler = Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

type MakeHandler<S> = Box<dyn FnOnce(S) -> BoxedHandler + Send>;

/// Business handlers by function name, sharing app state `S` (given with
/// [`Functions::with_state`], as axum's `Router::with_state`).
pub struct Functions<S = ()> {
    entries: Vec<(String, MakeHandler<S>)>,
}

impl<S> fmt::Debug for Functions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(name, _)| name)).finish()
    }
}

impl<S: Clone + Send + Sync + 'static> Default for Functions<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Functions<S> {
    /// No functions yet.
    pub fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// Serves function `name` (its folder name, matched case-insensitively) with `handler`:
    /// any axum handler, `async fn` with extractors, or a `MethodRouter`. HTTP functions run
    /// it only after the caller's token and the function's policy passed.
    pub fn function<H, T>(mut self, name: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        // The function's `maxBodyBytes` bounds the body before the handler reads it (the
        // library stops a longer one as it streams), so axum's own 2 MB default for
        // `Bytes`, `String` and `Json` must not cut it shorter.
        let handler = handler.layer(DefaultBodyLimit::disable());
        let make: MakeHandler<S> = Box::new(move |state: S| -> BoxedHandler {
            Arc::new(move |request: Request| Box::pin(handler.clone().call(request, state.clone())))
        });
        self.entries.push((name.to_owned(), make));
        self
    }

    /// Serves function `name` with a tower `service` whose errors are
    /// [`Infallible`] (as axum's `Router::route_service` asks) and whose response body is
    /// axum-compatible: an axum `Router`, an MCP SDK's Streamable HTTP service, a file
    /// server. It runs behind the same token check and policy as a handler, gets the body as
    /// it streams, and finds the verified claims (as `Arc<`[`Claims`](crate::auth::Claims)`>`,
    /// where the [`Claims`](crate::auth::Claims) extractor reads them) and the
    /// [`RouteValues`](crate::route::RouteValues) in the request's extensions. The request
    /// URI is the public one (`/api/<route>`, with the host's `routePrefix`), in every mode.
    pub fn service<T>(mut self, name: &str, service: T) -> Self
    where
        T: tower::Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        let service = DefaultBodyLimit::disable().layer(service);
        let make: MakeHandler<S> = Box::new(move |_: S| -> BoxedHandler {
            Arc::new(move |request: Request| {
                let service = service.clone();
                Box::pin(async move {
                    match service.oneshot(request).await {
                        Ok(response) => response.into_response(),
                        Err(never) => match never {},
                    }
                })
            })
        });
        self.entries.push((name.to_owned(), make));
        self
    }

    /// Gives every handler `state` (read with axum's `State` extractor).
    pub fn with_state<S2>(self, state: S) -> Functions<S2> {
        let entries = self
            .entries
            .into_iter()
            .map(|(name, make)| {
                let state = state.clone();
                let make: MakeHandler<S2> = Box::new(move |_: S2| make(state));
                (name, make)
            })
            .collect();
        Functions { entries }
    }
}

impl Functions<()> {
    /// The handlers, by name, ready to serve.
    pub(crate) fn into_handlers(self) -> Vec<(String, BoxedHandler)> {
        self.entries.into_iter().map(|(name, make)| (name, make(()))).collect()
    }

    /// Names registered so far.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }
}

/// The functions of the `handler` binary: `api-a`.
pub fn builtin() -> Functions {
    Functions::new().function("api-a", api_a::handle)
}
