#!/usr/bin/env node
// Drives a remote MCP server (examples/mcp) with the official MCP TypeScript SDK client, the
// way an MCP client does it: no token first (401 with resource_metadata), RFC 9728 discovery
// of the authorization server, a client-credentials token for the server's own URL (RFC 8707
// `resource`), then initialize, tools/list and tool calls, with progress notifications
// streamed over SSE, and the 403 insufficient_scope step-up for a tool the token lacks.
//
// usage: node scripts/mcp-client/client.mjs <mcp-url> <issuer> <client-id> <client-secret> [scope]
//
// Prints ONE JSON object on stdout with what each step saw (tests/example_mcp.rs asserts on
// it); logs go to stderr. Exits 0 when every step ran (whatever it saw), 1 when one crashed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { discoverOAuthProtectedResourceMetadata } from "@modelcontextprotocol/sdk/client/auth.js";

const [url, issuer, clientId, clientSecret, scope = "read:orders"] = process.argv.slice(2);
if (!url || !issuer || !clientId || !clientSecret) {
  console.error("usage: client.mjs <mcp-url> <issuer> <client-id> <client-secret> [scope]");
  process.exit(2);
}
const serverUrl = new URL(url);
const out = {};
const failure = (e) => ({ name: e?.constructor?.name ?? "Error", code: e?.code ?? null, message: String(e?.message ?? e) });

// 1. What a client without a token sees.
{
  const response = await fetch(serverUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {} }),
  });
  out.anonymous = { status: response.status, challenge: response.headers.get("www-authenticate") };
  await response.body?.cancel();
}

// 2. The SDK without credentials: it must fail on the 401, not get through.
{
  const client = new Client({ name: "no-credentials", version: "1.0.0" });
  try {
    await client.connect(new StreamableHTTPClientTransport(serverUrl));
    out.without_token = { connected: true };
  } catch (e) {
    out.without_token = { connected: false, error: failure(e) };
  }
}

// 3. Discovery as the SDK does it (the challenge's resource_metadata first, then well-known).
out.metadata = await discoverOAuthProtectedResourceMetadata(serverUrl);

// 4. The full flow: 401 -> metadata -> authorization server -> token -> calls.
// expectedIssuer: the credentials only ever go to this authorization server, whatever the
// server's metadata names.
const authProvider = new ClientCredentialsProvider({ clientId, clientSecret, scope, expectedIssuer: issuer });
const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider });
const client = new Client({ name: "azfn-auth-e2e", version: "1.0.0" });
try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.protocol_version = transport.protocolVersion ?? null;
  out.token_scope = authProvider.tokens()?.scope ?? null;
  out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
  const list = await client.callTool({ name: "list_orders", arguments: { limit: 3 } });
  out.list_orders = JSON.parse(list.content[0].text);
  const progress = [];
  const summary = await client.callTool(
    { name: "summarize_orders", arguments: { count: 50 } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  out.summarize_orders = { result: JSON.parse(summary.content[0].text), progress };
  try {
    const created = await client.callTool({ name: "create_order", arguments: { item: "widget", quantity: 2 } });
    out.create_order = { result: created };
  } catch (e) {
    out.create_order = { error: failure(e) };
  }
  out.token_scope_after = authProvider.tokens()?.scope ?? null;
} catch (e) {
  out.error = failure(e);
  console.error(e);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
