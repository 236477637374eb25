//! The remote MCP server example (`examples/mcp`), as its users run it:
//! - the built example binary, driven by the official MCP TypeScript SDK client
//!   (`scripts/mcp-client`) with tokens from the local OIDC provider process: 401 with
//!   `resource_metadata`, RFC 9728 discovery, a token for the server's own URL, initialize,
//!   tools, progress streamed over SSE, 403 `insufficient_scope` for a tool the token lacks;
//!   directly and through a loopback stand-in for the host's proxy (YARP: Host rewritten to
//!   the handler's address, the host's invocation headers added, bodies streamed);
//! - the same functions in-process over real TCP, for what the client cannot show (the
//!   challenge's exact attributes, a token with the permission, the bulk functions);
//! - a 200 MB upload and a 200 MB download through the binary, whose peak RSS stays small.
//!
//! Needs `node` (>= 20.19) and npm on first run (`npm ci` of both scripts' lock files).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code, unreachable_pub)]

mod common;
#[path = "../examples/mcp/mcp.rs"]
mod mcp;
#[path = "common/provider.rs"]
mod provider;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::layout::AppLayout;
use common::*;
use provider::{Proc, Provider, ProviderOptions, free_port, repo_root};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CLIENT_ID: &str = "mcp-e2e-client";
const CLIENT_SECRET: &str = "mcp-e2e-secret";
const STARTUP: Duration = Duration::from_secs(30);

fn app_root() -> PathBuf {
    repo_root().join("examples").join("mcp")
}

/// `target/<profile>/examples/mcp`. `cargo test` builds examples as tests only (another
/// file name), so the first test that needs the binary builds it with the same cargo,
/// profile and target dir (CARGO_TARGET_DIR) as this test binary (a no-op when scripts/test.sh built it).
fn example_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap();
            let binary = profile_dir.join("examples").join(format!("mcp{}", std::env::consts::EXE_SUFFIX));
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.current_dir(repo_root()).args(["build", "--example", "mcp"]);
            if profile_dir.file_name().is_some_and(|name| name == "release") {
                build.arg("--release");
            }
            let status = build.stdin(Stdio::null()).status().expect("run cargo build --example mcp");
            assert!(status.success(), "cargo build --example mcp failed");
            assert!(binary.is_file(), "{} is missing after cargo build --example mcp", binary.display());
            binary
        })
        .clone()
}

/// The example binary as the host starts it, on `port`, with `env`.
async fn start_example(port: u16, env: &[(&str, &str)], logs: &Path) -> Proc {
    let log = logs.join("mcp.log");
    let mut command = Command::new(example_binary());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_APP_ROOT_PATH", app_root())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut proc = Proc::new("mcp", command.spawn().unwrap(), log);
    let client = provider::http_client(Duration::from_secs(5));
    provider::wait_ready(&mut proc, &format!("http://127.0.0.1:{port}"), &client, STARTUP, Duration::from_millis(20))
        .await;
    proc
}

/// The official MCP TypeScript client against `url`; its one JSON line of findings.
async fn run_client(url: &str, issuer: &str) -> Value {
    provider::ensure_mcp_client_installed();
    let script = provider::mcp_client_dir().join("client.mjs");
    let mut command = tokio::process::Command::new("node");
    command.arg(script).args([url, issuer, CLIENT_ID, CLIENT_SECRET, "read:orders"]).kill_on_drop(true);
    let output =
        tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("client finished").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client failed: {stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// What the MCP client must have seen, whichever way it reached the server at `resource`.
fn assert_mcp_flow(found: &Value, resource: &str, issuer: &str) {
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", resource.trim_end_matches("/mcp"));
    assert_eq!(found["anonymous"]["status"], 401, "{found}");
    let challenge = found["anonymous"]["challenge"].as_str().unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    assert!(challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)), "{challenge}");
    assert_eq!(found["without_token"]["connected"], false, "{found}");
    assert_eq!(found["without_token"]["error"]["code"], 401, "{found}");

    assert_eq!(found["metadata"]["resource"], resource, "{found}");
    assert_eq!(found["metadata"]["authorization_servers"], json!([issuer]), "{found}");

    assert!(found.get("error").is_none(), "{found}");
    assert_eq!(found["token_scope"], "read:orders", "{found}");
    assert_eq!(found["tools"], json!(["create_order", "list_orders", "summarize_orders"]), "{found}");
    let orders = found["list_orders"].as_array().unwrap();
    assert_eq!(orders.iter().map(|o| o["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3], "{found}");
    assert_eq!(orders[0], serde_json::to_value(mcp::order(1)).unwrap());

    let expected: u64 = (1..=50).map(|id| u64::from(mcp::order(id).quantity)).sum();
    assert_eq!(found["summarize_orders"]["result"], json!({"orders": 50, "quantity": expected}), "{found}");
    let progress: Vec<u64> = found["summarize_orders"]["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["progress"].as_u64().unwrap())
        .collect();
    assert_eq!(progress, [5, 10, 15, 20, 25, 30, 35, 40, 45, 50], "{found}");

    // create_order needs the create:orders permission, which a client-credentials token
    // never carries: the SDK saw 403 insufficient_scope, tried to step up, and gave up.
    assert_eq!(found["create_order"]["error"]["code"], 403, "{found}");
    assert!(found["create_order"]["error"]["message"].as_str().unwrap().contains("upscoping"), "{found}");
}

fn start_provider(logs: &Path, resource: &str) -> Provider {
    provider::ensure_provider_installed();
    Provider::start_with(
        logs,
        ProviderOptions {
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            audiences: &[resource],
            allow_test_ttl: false,
            startup_timeout: STARTUP,
            http: provider::http_client(Duration::from_secs(5)),
        },
        &["--scope", "read:orders create:orders"],
    )
}

#[tokio::test]
async fn the_official_mcp_client_discovers_authorizes_and_calls_tools() {
    let logs = provider::log_dir("mcp", "direct");
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = start_provider(&logs, &resource);
    let env = [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", &resource), ("AUTH_RESOURCE", &resource)];
    let server = start_example(port, &env, &logs).await;

    let found = run_client(&resource, &idp.issuer).await;
    assert_mcp_flow(&found, &resource, &idp.issuer);

    // Every request got its decision line, the 403s included, and no token was logged.
    let log = server.log_text();
    assert!(log.contains("auth decision") && log.contains("status=403"), "{log}");
    assert!(!log.contains("eyJ"), "a token reached the log");
    let _ = std::fs::remove_dir_all(&logs);
}

#[tokio::test]
async fn the_same_flow_through_a_stand_in_for_the_hosts_proxy() {
    let logs = provider::log_dir("mcp", "proxied");
    let port = free_port();
    let host = HostProxy::start(port).await;
    // The public URL is the proxy's; the handler itself listens elsewhere.
    let resource = format!("http://{}/mcp", host.addr);
    let idp = start_provider(&logs, &resource);
    let env = [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", &resource), ("AUTH_RESOURCE", &resource)];
    let _server = start_example(port, &env, &logs).await;

    let found = run_client(&resource, &idp.issuer).await;
    assert_mcp_flow(&found, &resource, &idp.issuer);
    assert!(host.forwarded() >= 6, "the client's requests went through the proxy");
    let _ = std::fs::remove_dir_all(&logs);
}

/// A loopback stand-in for the Functions host's proxy mode (YARP, PROTOCOL.md §4.1): path
/// and query as sent, `Host` set to the handler's address, `X-Azure-Functions-HostVersion`,
/// `X-Azure-Functions-InvocationId` and `x-ms-invocation-id` added, bodies streamed both
/// ways. One request per connection (it answers `Connection: close`).
struct HostProxy {
    addr: SocketAddr,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl HostProxy {
    async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    if let Err(error) = Self::forward(client, upstream_port, n).await {
                        eprintln!("host proxy: request {n}: {error}");
                    }
                });
            }
        });
        Self { addr, count }
    }

    fn forwarded(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn forward(mut client: TcpStream, upstream_port: u16, n: usize) -> std::io::Result<()> {
        let (head, rest) = read_head(&mut client).await?;
        let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
        lines.retain(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("host:") && !l.starts_with("connection:")
        });
        let id = format!("00000000-0000-4000-8000-{n:012}");
        lines.insert(1, format!("Host: 127.0.0.1:{upstream_port}"));
        lines.push("X-Azure-Functions-HostVersion: 4.1045.200.0".into());
        lines.push(format!("X-Azure-Functions-InvocationId: {id}"));
        lines.push(format!("x-ms-invocation-id: {id}"));
        lines.push("Connection: close".into());
        let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
        upstream.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes()).await?;
        upstream.write_all(&rest).await?;
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_upstream, mut to_upstream) = upstream.into_split();
        // The rest of the request body, as the client sends it; the handler may stop
        // reading (and close) before it ends, which only ends this copy.
        let upload = tokio::spawn(async move { tokio::io::copy(&mut from_client, &mut to_upstream).await });
        let (head, rest) = read_head(&mut from_upstream).await?;
        let mut lines: Vec<&str> = head.split("\r\n").collect();
        lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
        let head = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
        to_client.write_all(head.as_bytes()).await?;
        to_client.write_all(&rest).await?;
        tokio::io::copy(&mut from_upstream, &mut to_client).await?;
        to_client.shutdown().await?;
        upload.abort();
        Ok(())
    }
}

/// Reads an HTTP head; returns it (without the blank line) and the bytes read past it.
async fn read_head<R: AsyncReadExt + Unpin>(stream: &mut R) -> std::io::Result<(String, Vec<u8>)> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).into_owned();
            return Ok((head, seen[end + 4..].to_vec()));
        }
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buffer[..n]);
    }
}

// ---- In-process: the example's functions over real TCP, tokens signed here ----

const RESOURCE_PATH: &str = "/mcp";

struct InProcess {
    addr: SocketAddr,
    resource: String,
    key: TestKey,
    idp: Idp,
}

impl InProcess {
    async fn start() -> Self {
        let key = rsa_key("rsa-a.pem", "key-a");
        let idp = Idp::start(&[&key]).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let resource = format!("http://{addr}{RESOURCE_PATH}");
        let mut config = auth_config(&idp.issuer);
        config.audiences = vec![resource.clone()];
        config.resource = Some(resource.parse().unwrap());
        let layout = AppLayout::load(&app_root()).unwrap();
        let auth = Authenticator::new(&config).unwrap();
        let functions = mcp::functions(mcp::allowed_hosts(|_| None));
        let state = Arc::new(AppState::with_functions(auth, layout, functions, 1 << 20).unwrap());
        tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
        Self { addr, resource, key, idp }
    }

    /// An Auth0 user token for this server (RBAC permissions, as Auth0 adds them).
    fn token(&self, scope: &str, permissions: &[&str]) -> String {
        let mut claims = claims(&self.idp.issuer);
        claims["aud"] = json!([self.resource, format!("{}userinfo", self.idp.issuer)]);
        claims["sub"] = json!("auth0|alice");
        claims["scope"] = json!(scope);
        claims["permissions"] = json!(permissions);
        claims.as_object_mut().unwrap().remove("gty");
        token(&self.key, &claims)
    }

    async fn post(&self, path: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{authorization}Content-Type: {content_type}\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        raw(self.addr, [head.as_bytes(), body].concat()).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{authorization}Connection: close\r\n\r\n", self.addr);
        raw(self.addr, head.into_bytes()).await
    }

    async fn call_tool(&self, token: &str, name: &str, arguments: Value) -> (u16, String, Vec<u8>) {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}});
        self.post("/mcp", Some(token), "application/json", call.to_string().as_bytes()).await
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// The JSON-RPC messages of an SSE answer (`data:` lines).
fn sse_messages(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[tokio::test]
async fn a_tool_call_without_its_right_is_403_naming_the_scope_before_the_sdk_sees_it() {
    let server = InProcess::start().await;
    let reader = server.token("read:orders", &[]);
    let (status, head, body) =
        server.call_tool(&reader, "create_order", json!({"item": "widget", "quantity": 2})).await;
    assert_eq!(status, 403, "{head}");
    let challenge = header(&head, "www-authenticate").unwrap();
    let metadata = format!("http://{}/.well-known/oauth-protected-resource/mcp", server.addr);
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="api", error="insufficient_scope", error_description="The access token does not grant access to this function", resource_metadata="{metadata}", scope="create:orders""#
        )
    );
    assert_eq!(String::from_utf8_lossy(&body), "The access token does not grant access to this function");

    let nobody = server.token("", &[]);
    let (status, head, _) = server.call_tool(&nobody, "list_orders", json!({})).await;
    assert_eq!(status, 403);
    assert!(header(&head, "www-authenticate").unwrap().ends_with(r#"scope="read:orders""#), "{head}");
}

#[tokio::test]
async fn a_tool_call_with_its_right_is_answered_over_sse_for_the_tokens_subject() {
    let server = InProcess::start().await;
    let buyer = server.token("read:orders", &["create:orders"]);
    let (status, head, body) = server.call_tool(&buyer, "create_order", json!({"item": "widget", "quantity": 2})).await;
    assert_eq!(status, 200, "{head}");
    assert!(header(&head, "content-type").unwrap().starts_with("text/event-stream"), "{head}");
    let messages = sse_messages(&body);
    let result = messages.iter().find(|m| m["id"] == 7).unwrap_or_else(|| panic!("{messages:?}"));
    let order: Value = serde_json::from_str(result["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        (order["customer"].as_str(), order["item"].as_str(), order["quantity"].as_u64()),
        (Some("auth0|alice"), Some("widget"), Some(2))
    );
}

#[tokio::test]
async fn only_tokens_for_this_servers_resource_are_accepted() {
    let server = InProcess::start().await;
    let mut claims = claims(&server.idp.issuer);
    claims["aud"] = json!("https://api-a.example.com");
    claims["scope"] = json!("read:orders");
    let other = token(&server.key, &claims);
    let (status, head, _) = server.call_tool(&other, "list_orders", json!({})).await;
    assert_eq!(status, 401, "{head}");
    assert!(header(&head, "www-authenticate").unwrap().contains(r#"error="invalid_token""#), "{head}");

    // The RFC 9728 document where MCP clients look, without a token.
    let (status, _, body) = server.get("/.well-known/oauth-protected-resource/mcp", None).await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["resource"], server.resource);
    assert_eq!(document["authorization_servers"], json!([server.idp.issuer]));
}

#[tokio::test]
async fn orders_export_streams_one_line_per_order_for_read_orders() {
    let server = InProcess::start().await;
    let (status, head, body) = server.get("/orders/export?count=1500", Some(&server.token("read:orders", &[]))).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/x-ndjson"));
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"), "streamed, not sized up front: {head}");
    let lines: Vec<Value> =
        String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1500);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, serde_json::to_value(mcp::order(i as u64 + 1)).unwrap());
    }
    let (status, _, body) = server.get("/orders/export?count=0", Some(&server.token("read:orders", &[]))).await;
    assert_eq!((status, body.len()), (200, 0));
    let (status, head, _) = server.get("/orders/export?count=3", Some(&server.token("", &[]))).await;
    assert_eq!(status, 403, "{head}");
    let (status, _, _) = server.get("/orders/export?count=99999999999", Some(&server.token("read:orders", &[]))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn orders_import_hashes_what_it_read_for_create_orders() {
    let server = InProcess::start().await;
    let body = b"{\"id\":1}\n{\"id\":2}\n";
    let buyer = server.token("", &["create:orders"]);
    let (status, head, answer) = server.post("/orders/import", Some(&buyer), "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{head}");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(serde_json::from_slice::<Value>(&answer).unwrap(), json!({"bytes": body.len(), "sha256": hex}));
    let reader = server.token("read:orders", &[]);
    let (status, _, _) = server.post("/orders/import", Some(&reader), "application/x-ndjson", body).await;
    assert_eq!(status, 403);
}

// ---- 200 MB each way through the binary, RSS measured ----

const BIG: u64 = 200 * 1000 * 1000;

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_megabytes_each_way_pass_through_without_the_handler_holding_them() {
    let logs = provider::log_dir("mcp", "bulk");
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = [("AUTH_ISSUER", idp.issuer.as_str()), ("AUTH_AUDIENCE", &resource), ("AUTH_RESOURCE", &resource)];
    let server = start_example(port, &env, &logs).await;
    let pid = server.child.id();
    let mut claims = claims(&idp.issuer);
    claims["aud"] = json!(resource);
    claims["scope"] = json!("read:orders");
    claims["permissions"] = json!(["create:orders"]);
    let token = token(&key, &claims);

    // Upload: 200 MB, chunked as a streaming client sends it, hashed on both sides.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /orders/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < BIG {
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = (sent as usize + i) as u8;
        }
        digest.update(&chunk);
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        stream.write_all(&framed).await.unwrap();
        sent += chunk.len() as u64;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let (status, head, body) = split_response(&answer);
    assert_eq!(status, 200, "{head}");
    let hex: String = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"bytes": sent, "sha256": hex}));

    // Download: orders until at least 200 MB, read as they come, checked line by line.
    let count = 3_000_000u64;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /orders/export?count={count} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, mut pending) = read_head(&mut stream).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The decision line went out with the head, not at the end of the stream.
    let log = server.log_text();
    let decided =
        log.lines().any(|l| l.contains("auth decision") && l.contains("orders-export") && l.contains("status=200"));
    assert!(decided, "no decision line while the export streams:\n{log}");
    let (mut next_id, mut bytes, mut buffer) = (1u64, 0u64, vec![0u8; 256 * 1024]);
    let mut body = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        // De-chunk as it arrives: size line, data, CRLF.
        let Some(line_end) = pending.windows(2).position(|w| w == b"\r\n") else {
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await.unwrap().unwrap();
            assert!(n > 0, "closed mid-answer");
            pending.extend_from_slice(&buffer[..n]);
            continue;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&pending[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        while pending.len() < line_end + 2 + size + 2 {
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await.unwrap().unwrap();
            assert!(n > 0, "closed mid-chunk");
            pending.extend_from_slice(&buffer[..n]);
        }
        body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
        pending.drain(..line_end + 2 + size + 2);
        // Whole lines only: each must be the next order's id.
        let last_newline = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        for line in body[..last_newline].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let prefix = format!("{{\"id\":{next_id},");
            assert!(line.starts_with(prefix.as_bytes()), "line {next_id}: {}", String::from_utf8_lossy(line));
            next_id += 1;
            bytes += line.len() as u64 + 1;
        }
        body.drain(..last_newline);
    }
    assert_eq!(next_id - 1, count);
    assert!(bytes >= BIG, "only {bytes} bytes");

    let (rss, peak) = memory_kib(pid);
    eprintln!("after 200 MB up ({sent} B) and {bytes} B down: RSS {rss} KiB, peak {peak} KiB");
    assert!(peak < 40 * 1024, "the handler's peak RSS was {peak} KiB");
    let _ = std::fs::remove_dir_all(&logs);
}
