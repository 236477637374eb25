//! A remote MCP server (Model Context Protocol, Streamable HTTP transport) on Azure
//! Functions, protected by Auth0 access tokens, on the official Rust MCP SDK (`rmcp`).
//!
//! The folders beside this file are the app root: `mcp` (the MCP endpoint, proxy mode),
//! `oauth-protected-resource` (the RFC 9728 document, where MCP clients look for it) and two
//! bulk functions that stream over plain HTTP, `orders-export` (NDJSON download) and
//! `orders-import` (upload of up to 512 MiB, hashed as it arrives).
//!
//! Authorization, in order: the library checks the token (issuer, this server's audience
//! only, signature, expiry) before any of this code runs; [`mcp`] then checks the scope each
//! tool needs *before* the MCP SDK sees the call, so a missing scope is an HTTP 403
//! `insufficient_scope` naming it (what MCP clients use to step up), not an MCP error.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use azfn_auth::auth::Claims;
use azfn_auth::extract::{Problem, Refuse};
use azfn_auth::functions::Functions;
use futures_util::StreamExt;
use http::StatusCode;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

/// Scope of the read-only tools and of `orders-export`.
pub(crate) const READ_ORDERS: &str = "read:orders";
/// Auth0 RBAC permission of `create_order` and `orders-import`.
pub(crate) const CREATE_ORDERS: &str = "create:orders";

/// What a tool asks of the caller's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Right {
    /// In `scope` (`scp`).
    Scope(&'static str),
    /// In `permissions` (Auth0 RBAC; Entra ID `roles`).
    Permission(&'static str),
}

impl Right {
    fn name(self) -> &'static str {
        match self {
            Self::Scope(name) | Self::Permission(name) => name,
        }
    }

    fn held_by(self, claims: &Claims) -> bool {
        match self {
            Self::Scope(name) => claims.scopes().iter().any(|s| s == name),
            Self::Permission(name) => claims.permissions().iter().any(|p| p == name),
        }
    }
}

/// The right each tool needs. A new tool gets its line here; a tool without one is open to
/// every caller with a valid token.
pub(crate) fn right_for(tool: &str) -> Option<Right> {
    match tool {
        "list_orders" | "summarize_orders" => Some(Right::Scope(READ_ORDERS)),
        "create_order" => Some(Right::Permission(CREATE_ORDERS)),
        _ => None,
    }
}

/// One order of the example's catalogue: generated from its id, so every instance answers
/// the same without shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct Order {
    /// Order number.
    pub(crate) id: u64,
    /// Who placed it.
    pub(crate) customer: String,
    /// What was ordered.
    pub(crate) item: String,
    /// How many.
    pub(crate) quantity: u32,
}

/// Order `id` of the catalogue.
pub(crate) fn order(id: u64) -> Order {
    const ITEMS: [&str; 5] = ["widget", "gadget", "sprocket", "flange", "gizmo"];
    Order {
        id,
        customer: format!("customer-{}", id % 97),
        item: ITEMS[(id % ITEMS.len() as u64) as usize].to_owned(),
        quantity: (id % 7) as u32 + 1,
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ListOrders {
    /// How many orders, from the first (1–100, default 10).
    pub(crate) limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CreateOrder {
    /// What to order.
    pub(crate) item: String,
    /// How many (1–1000).
    pub(crate) quantity: u32,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct SummarizeOrders {
    /// How many orders to go through (1–10000); progress is reported every 10%.
    pub(crate) count: u32,
}

/// The MCP server: its tools and the ids it hands out.
#[derive(Debug, Clone)]
pub(crate) struct OrdersServer {
    #[allow(dead_code, reason = "read by the code #[tool_handler] generates")]
    tool_router: ToolRouter<Self>,
    next_id: Arc<AtomicU64>,
}

impl OrdersServer {
    fn new(next_id: Arc<AtomicU64>) -> Self {
        Self { tool_router: Self::tool_router(), next_id }
    }
}

fn json_result(value: &impl Serialize) -> Result<CallToolResult, ErrorData> {
    let text = serde_json::to_string(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

#[tool_router]
impl OrdersServer {
    /// Needs scope `read:orders` (checked in [`mcp`] before the call reaches here).
    #[tool(description = "List orders, oldest first")]
    async fn list_orders(
        &self,
        Parameters(ListOrders { limit }): Parameters<ListOrders>,
    ) -> Result<CallToolResult, ErrorData> {
        let limit = limit.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(ErrorData::invalid_params("limit must be between 1 and 100", None));
        }
        json_result(&(1..=u64::from(limit)).map(order).collect::<Vec<_>>())
    }

    /// Needs permission `create:orders`. The customer is the token's subject, never a
    /// parameter the client could choose.
    #[tool(description = "Place an order for the signed-in customer")]
    async fn create_order(
        &self,
        Parameters(CreateOrder { item, quantity }): Parameters<CreateOrder>,
        Extension(request): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        if item.trim().is_empty() || !(1..=1000).contains(&quantity) {
            return Err(ErrorData::invalid_params("item must be named and quantity between 1 and 1000", None));
        }
        let claims = request.extensions.get::<Arc<Claims>>();
        let customer = claims.and_then(|c| c.subject()).unwrap_or("-").to_owned();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        json_result(&Order { id, customer, item, quantity })
    }

    /// Needs scope `read:orders`. Streams a progress notification every 10% (over SSE, as
    /// it works) when the client asked for progress.
    #[tool(description = "Total the quantities of the first `count` orders, reporting progress")]
    async fn summarize_orders(
        &self,
        Parameters(SummarizeOrders { count }): Parameters<SummarizeOrders>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if !(1..=10_000).contains(&count) {
            return Err(ErrorData::invalid_params("count must be between 1 and 10000", None));
        }
        let progress = meta.get_progress_token();
        let step = count.div_ceil(10);
        let mut total = 0u64;
        for id in 1..=u64::from(count) {
            total += u64::from(order(id).quantity);
            if let Some(token) = &progress
                && (id % u64::from(step) == 0 || id == u64::from(count))
            {
                let note = ProgressNotificationParam::new(token.clone(), id as f64)
                    .with_total(f64::from(count))
                    .with_message(format!("{id} of {count} orders"));
                peer.notify_progress(note).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                // Let the notification go out before the next batch of work.
                tokio::task::yield_now().await;
            }
        }
        json_result(&serde_json::json!({ "orders": count, "quantity": total }))
    }
}

#[tool_handler]
impl ServerHandler for OrdersServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Orders: list (read:orders), create (create:orders), summarize with progress (read:orders).",
        )
    }
}

/// The SDK's Streamable HTTP service, stateless: every POST carries its whole exchange, no
/// session is pinned to the instance that saw `initialize`, so any instance can answer
/// any request and the app scales out (and survives restarts) with no shared store.
type McpService = StreamableHttpService<OrdersServer, NeverSessionManager>;

fn mcp_service(allowed_hosts: Vec<String>) -> McpService {
    let next_id = Arc::new(AtomicU64::new(1_000_001));
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_allowed_hosts(allowed_hosts)
        // MCP clients get the answer as SSE whenever the tool sends notifications first.
        .with_json_response(false);
    StreamableHttpService::new(move || Ok(OrdersServer::new(next_id.clone())), Arc::default(), config)
}

/// `Host` values the MCP service accepts (its DNS-rebinding guard): the host of
/// `AUTH_RESOURCE` (this server's public URL), `WEBSITE_HOSTNAME` (set by App Service), and
/// loopback for `func start` and the host's proxy.
pub(crate) fn allowed_hosts(lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).to_vec();
    if let Some(resource) = lookup("AUTH_RESOURCE").and_then(|r| url::Url::parse(&r).ok())
        && let Some(host) = resource.host_str()
    {
        hosts.push(host.to_owned());
    }
    hosts.extend(lookup("WEBSITE_HOSTNAME").filter(|h| !h.is_empty()));
    hosts
}

/// Function `mcp`: checks the right each tool call needs, then hands the request to the
/// MCP service unchanged. JSON-RPC messages are small (the function's default body limit
/// applies), so the body is read here to look at the method and tool name.
async fn mcp(State(service): State<McpService>, claims: Claims, refuse: Refuse, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return Problem::new(StatusCode::BAD_REQUEST).detail("the request body could not be read").into_response();
    };
    if let Some(right) = missing_right(&body, &claims) {
        return refuse.insufficient_scope(&[right.name()]);
    }
    match service.oneshot(Request::from_parts(parts, Body::from(body))).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// The first right a `tools/call` in `body` (one message or a batch) needs that the
/// caller's token lacks. Anything that is not a tool call needs none here.
pub(crate) fn missing_right(body: &[u8], claims: &Claims) -> Option<Right> {
    #[derive(Deserialize)]
    struct Message {
        method: Option<String>,
        params: Option<Params>,
    }
    #[derive(Deserialize)]
    struct Params {
        name: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Messages {
        One(Message),
        Batch(Vec<Message>),
    }
    let messages = match serde_json::from_slice(body) {
        Ok(Messages::One(message)) => vec![message],
        Ok(Messages::Batch(messages)) => messages,
        // Not JSON-RPC: the SDK answers it (400).
        Err(_) => return None,
    };
    messages
        .iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| m.params.as_ref()?.name.as_deref())
        .filter_map(right_for)
        .find(|right| !right.held_by(claims))
}

#[derive(Debug, Deserialize)]
struct Export {
    count: Option<u64>,
}

/// Most orders one export streams (about 75 bytes each: a 750 MB answer).
pub(crate) const MAX_EXPORT: u64 = 10_000_000;
/// Orders per written frame: large enough to stream at disk speed, small enough that the
/// first bytes leave at once.
const EXPORT_BATCH: u64 = 512;

/// Function `orders-export`: `GET orders/export?count=N`, one JSON line per order
/// (`application/x-ndjson`), generated and written as the caller reads, never held.
async fn orders_export(Query(Export { count }): Query<Export>) -> Response {
    let count = count.unwrap_or(100);
    if count > MAX_EXPORT {
        return Problem::new(StatusCode::BAD_REQUEST)
            .invalid_param("count", format!("at most {MAX_EXPORT}"))
            .into_response();
    }
    let batches = futures_util::stream::unfold(1u64, move |next| async move {
        if next > count {
            return None;
        }
        let last = (next + EXPORT_BATCH - 1).min(count);
        let mut lines = Vec::with_capacity((last - next + 1) as usize * 80);
        for id in next..=last {
            // Serializing this struct cannot fail.
            let _ = serde_json::to_writer(&mut lines, &order(id));
            lines.push(b'\n');
        }
        Some((Ok::<_, Infallible>(Bytes::from(lines)), last + 1))
    });
    ([(http::header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(batches)).into_response()
}

/// Function `orders-import`: `POST orders/import`, a body of any size up to `maxBodyBytes`
/// (512 MiB in its `auth.json`), hashed as it streams in; answers what it read.
async fn orders_import(request: Request) -> Response {
    let mut frames = request.into_body().into_data_stream();
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut bytes = 0u64;
    while let Some(frame) = frames.next().await {
        let Ok(frame) = frame else {
            // Over the limit, the library answers 413 whatever this says.
            return Problem::new(StatusCode::BAD_REQUEST).detail("the upload was cut short").into_response();
        };
        digest.update(&frame);
        bytes += frame.len() as u64;
    }
    let sha256: String = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    axum::Json(serde_json::json!({ "bytes": bytes, "sha256": sha256 })).into_response()
}

/// The example's functions. `allowed_hosts`: see [`allowed_hosts`].
pub(crate) fn functions(allowed_hosts: Vec<String>) -> Functions {
    Functions::new()
        .function("mcp", mcp)
        .with_state(mcp_service(allowed_hosts))
        .function("orders-export", orders_export)
        .function("orders-import", orders_import)
}
