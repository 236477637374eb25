//! An Azure Functions custom handler that serves HTTP functions only to callers with a
//! valid OAuth 2.0 bearer token (Auth0 or any OpenID Connect issuer), behind the
//! platform's function key.
//!
//! # Layout
//! - [`config`]: settings from the environment; errors name the variable.
//! - [`layout`]: `host.json` and `*/function.json`: routes, methods, bindings, protocol mode,
//!   and which function serves a path (the host's order).
//! - [`route`]: route templates (`orders/{id:int}`) parsed and matched as the host does.
//! - [`server`]: start-up: bind the port, spawn key refreshers, serve; [`server::run`] is an
//!   app's whole `main`.
//! - [`app`]: the router (readiness, invocation, forwarding/proxy), the one request path for
//!   HTTP functions and the one for other triggers.
//! - `body`: request bodies streamed to handlers under each function's size limit.
//! - [`protocol`]: the invocation envelope, converted to and from `http` types and binding
//!   values at the edge (imports nothing of the app).
//! - [`auth`]: bearer parsing, signing keys, token verification, verified-token cache,
//!   per-function policy and step-up (RFC 9470), DPoP proofs (RFC 9449) and
//!   sender-constrained tokens (`cnf`, RFC 8705), key set snapshots on disk.
//! - [`metadata`]: optional RFC 9728 protected-resource metadata.
//! - [`openapi`]: the app's OpenAPI 3.1 document (`--openapi`), from its app root.
//! - [`hosting`]: which Functions plan this is, and whether instances share `$HOME`.
//! - [`storage`]: the app's storage account (`AzureWebJobsStorage`): a Shared Key Blob client.
//! - [`error`]: the failure → status / `WWW-Authenticate` table (RFC 6750).
//! - [`functions`]: [`functions::Functions`], axum handlers registered by function name;
//!   the built-in `api-a`.
//! - [`extract`]: what handlers take and give: claims, route values, bindings, trigger
//!   payloads, logs, output bindings, RFC 9457 problems.
//! - [`correlation`]: the host's invocation id and the caller's W3C trace context, read
//!   once per request for every log line, and their extractors.
//! - [`logs`]: an app's log lines with their levels, in the invocation's `Logs` or on
//!   stdout/stderr.
//! - [`telemetry`]: logging to stdout (app warnings and errors to stderr).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
mod body;
pub mod config;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod functions;
pub mod hosting;
mod input;
pub mod layout;
pub mod logs;
pub mod metadata;
pub mod openapi;
pub mod protocol;
pub mod route;
pub mod server;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
