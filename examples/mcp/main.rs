//! `mcp`: a remote MCP server on Azure Functions, protected by Auth0 (see `mcp.rs`). Built
//! with `cargo build --release --example mcp`; the Functions host starts
//! `target/release/examples/mcp` as it starts `handler`, with the same settings plus
//! `AUTH_RESOURCE` (this server's URL, which is also the token audience), and
//! `examples/mcp` is its app root (`FUNCTIONS_APP_ROOT_PATH`).

mod mcp;

fn main() -> std::process::ExitCode {
    let hosts = mcp::allowed_hosts(|name| std::env::var(name).ok());
    match azfn_auth::server::run(mcp::functions(hosts)) {
        0 => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}
