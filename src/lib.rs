//! An Azure Functions custom handler that serves HTTP functions only to callers with a
//! valid OAuth 2.0 bearer token (Auth0 or any OpenID Connect issuer), behind the
//! platform's function key.
//!
//! # Layout
//! - [`config`]: settings from the environment; errors name the variable.
//! - [`layout`]: `host.json` and `*/function.json`: routes, methods, protocol mode.
//! - [`server`]: start-up: bind the port, spawn key refreshers, serve.
//! - [`app`]: the router (readiness, invocation, forwarding/proxy) and the one request path.
//! - [`protocol`]: the invocation envelope, converted to and from `http` types at the edge.
//! - [`auth`]: bearer parsing, signing keys, token verification, verified-token cache.
//! - [`metadata`]: optional RFC 9728 protected-resource metadata.
//! - [`error`]: the failure → status / `WWW-Authenticate` table (RFC 6750).
//! - [`functions`]: business handlers, one per Azure function.
//! - [`telemetry`]: logging to stdout.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod functions;
pub mod layout;
pub mod metadata;
pub mod protocol;
pub mod server;
pub mod telemetry;
