#!/usr/bin/env node
// Local OpenID Connect provider playing Auth0's role, for scripts/dev.sh and tests/e2e_provider.rs.
//
// usage: node scripts/oidc-provider/provider.mjs [--port N] [--host 127.0.0.1]
//          [--client-id ID] [--client-secret SECRET] [--audience AUD[,AUD...]]
//          [--scope "read:a write:a"] [--ttl SECONDS] [--ignore-stdin] [--allow-test-ttl]
//
// Built on oauth2-mock-server (pinned in package.json). Endpoints, as on an Auth0 tenant:
//   GET  /.well-known/openid-configuration   discovery ("issuer" ends with a slash)
//   GET  /.well-known/jwks.json               JWKS (one RS256 key, with kid)
//   POST /oauth/token                         client_credentials grant, JSON or form body,
//                                             client auth in the body or via HTTP Basic;
//                                             the API as `audience`, or as RFC 8707 `resource`
//                                             (what MCP clients send; Auth0's resource
//                                             parameter compatibility profile);
//                                             with a DPoP proof header (RFC 9449 §5), the token
//                                             is bound to the proof key (cnf.jkt, token_type DPoP)
// --allow-test-ttl (tests only, Auth0 has no such thing): a token request may carry an integer
// "test_ttl" (seconds, may be negative) to get a token with exp = iat + test_ttl, so a test
// gets a genuinely signed but already expired token without waiting. Ignored without the flag.
// Access tokens are RS256 with Auth0's claim shape:
//   header {alg: RS256, typ: JWT, kid}; payload {iss, sub: "<client_id>@clients", aud, iat, exp,
//   scope, gty: "client-credentials", azp}
//
// Once listening it prints ONE line on stdout (nothing else is written to stdout):
//   {"event":"ready","issuer":"http://127.0.0.1:PORT/","port":PORT,"token_endpoint":...,"jwks_uri":...}
// Logs go to stderr. It exits on SIGTERM/SIGINT and when its stdin reaches EOF (so a parent that
// dies, or drops the pipe, takes it down); --ignore-stdin disables the latter.
import { OAuth2Server } from "oauth2-mock-server";
import { parseArgs } from "node:util";
import { constants, createHash, createPublicKey, randomBytes, timingSafeEqual, verify } from "node:crypto";

const { values: opt } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    "client-id": { type: "string", default: "dev-client" },
    "client-secret": { type: "string", default: "dev-secret" },
    audience: { type: "string", default: "https://api-a.local/" },
    scope: { type: "string", default: "read:api-a" },
    ttl: { type: "string", default: "3600" },
    "ignore-stdin": { type: "boolean", default: false },
    "allow-test-ttl": { type: "boolean", default: false },
  },
});

const port = Number(opt.port);
const ttl = Number(opt.ttl);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${opt.port}`);
if (!Number.isInteger(ttl) || ttl <= 0) fail(`bad --ttl ${opt.ttl}`);
const audiences = opt.audience.split(",").map((s) => s.trim()).filter(Boolean);
const grantedScopes = opt.scope.split(" ").filter(Boolean);

function fail(msg) {
  console.error(`oidc-provider: ${msg}`);
  process.exit(2);
}
const log = (msg) => console.error(`oidc-provider: ${msg}`);

const server = new OAuth2Server(undefined, undefined, {
  shouldIssuerUrlBeSuffixedWithATralingSlash: true,
  endpoints: { token: "/oauth/token", jwks: "/.well-known/jwks.json" },
});
// Discovery as Auth0's: the mock lists token_endpoint_auth_methods_supported ["none"], so a
// client that reads it (the MCP SDK does) would send no credentials. Auth0 lists these.
{
  const app = server.service.requestHandler;
  const layer = (app.router ?? app._router).stack.find((l) => l.route?.path === "/.well-known/openid-configuration");
  const original = layer.route.stack[0].handle;
  layer.route.stack[0].handle = (req, res, next) => {
    const json = res.json.bind(res);
    res.json = (doc) =>
      json({ ...doc, token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"] });
    return original(req, res, next);
  };
}
// One RS256 signing key with an Auth0-like kid, published with "use": "sig" as Auth0 does.
const key = await server.issuer.keys.generate("RS256", { kid: randomBytes(16).toString("base64url") });
await server.issuer.keys.add({ ...key, use: "sig" });

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

// Client authentication: client_secret_post (body) or client_secret_basic (Authorization header).
function clientOf(req) {
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (m) {
    const raw = Buffer.from(m[1], "base64").toString();
    const i = raw.indexOf(":");
    const decode = (s) => { try { return decodeURIComponent(s); } catch { return s; } };
    if (i >= 0) return { id: decode(raw.slice(0, i)), secret: decode(raw.slice(i + 1)) };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
}

// The API the token is for: `audience` (Auth0's parameter) or RFC 8707 `resource`.
const audienceOf = (req) => req.body?.audience ?? req.body?.resource;

// The scope Auth0 would grant: what the client grant allows, narrowed to what was asked for.
function scopeFor(req) {
  const asked = typeof req.body?.scope === "string" ? req.body.scope.split(" ").filter(Boolean) : null;
  return (asked ? grantedScopes.filter((s) => asked.includes(s)) : grantedScopes).join(" ");
}

// The lifetime of the token being issued: --ttl, or the request's test_ttl when allowed.
function ttlFor(req) {
  const asked = req.body?.test_ttl;
  return opt["allow-test-ttl"] && Number.isInteger(asked) ? asked : ttl;
}

// A DPoP proof at the token endpoint (RFC 9449 §4.3, as Auth0 checks it): typ, an asymmetric
// alg, a public jwk that verifies the signature, htm POST, htu this endpoint, iat recent.
// Returns the RFC 7638 thumbprint of the proof key, or throws with the reason.
const b64url = (buf) => Buffer.from(buf).toString("base64url");
function dpopThumbprint(req) {
  const proof = req.headers.dpop;
  if (typeof proof !== "string") throw new Error("one DPoP header expected");
  const [h, p, sig, extra] = proof.split(".");
  if (!h || !p || !sig || extra !== undefined) throw new Error("not a compact JWS");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  const claims = JSON.parse(Buffer.from(p, "base64url"));
  if (header.typ !== "dpop+jwt") throw new Error("typ");
  const jwk = header.jwk ?? {};
  if (["d", "p", "q", "dp", "dq", "qi", "k"].some((m) => m in jwk)) throw new Error("private jwk");
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(sig, "base64url");
  const ok = {
    ES256: () => verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature),
    RS256: () => verify("sha256", data, key, signature),
    PS256: () => verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature),
  }[header.alg];
  if (!ok || !ok()) throw new Error("signature");
  const url = `${server.issuer.url}oauth/token`;
  if (claims.htm !== "POST" || claims.htu !== url) throw new Error("htm/htu");
  if (typeof claims.jti !== "string" || Math.abs(Date.now() / 1000 - claims.iat) > 300) throw new Error("jti/iat");
  const members = { EC: ["crv", "kty", "x", "y"], RSA: ["e", "kty", "n"], OKP: ["crv", "kty", "x"] }[jwk.kty];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return b64url(createHash("sha256").update(canonical).digest());
}

// Claims as Auth0 puts them in a client-credentials access token.
server.service.on("beforeTokenSigning", (token, req) => {
  if (req.headers.dpop !== undefined) {
    try {
      token.payload.cnf = { jkt: dpopThumbprint(req) };
      req.dpopBound = true;
    } catch (e) {
      req.dpopError = String(e.message ?? e);
    }
  }
  const { id } = clientOf(req);
  token.payload.sub = `${id}@clients`;
  token.payload.aud = audienceOf(req);
  token.payload.azp = id;
  token.payload.scope = scopeFor(req);
  token.payload.gty = "client-credentials";
  token.payload.exp = token.payload.iat + ttlFor(req);
  delete token.payload.nbf; // Auth0 sets none
});

// Auth0's answers for a bad client / audience / grant replace the token the mock just built.
server.service.on("beforeResponse", (response, req) => {
  const body = req.body ?? {};
  const { id, secret } = clientOf(req);
  const deny = (statusCode, error, error_description) => {
    response.statusCode = statusCode;
    response.body = { error, error_description };
    log(`token request refused: ${statusCode} ${error}: ${error_description}`);
  };
  if (body.grant_type !== "client_credentials") {
    return deny(403, "unauthorized_client", `Grant type '${body.grant_type}' not allowed for the client.`);
  }
  if (!safeEqual(id ?? "", opt["client-id"]) || !safeEqual(secret ?? "", opt["client-secret"])) {
    return deny(401, "access_denied", "Unauthorized");
  }
  const audience = audienceOf(req);
  if (typeof audience !== "string" || audience === "") {
    return deny(403, "access_denied", "No audience parameter was provided, and no default audience has been configured");
  }
  if (!audiences.includes(audience)) {
    return deny(403, "access_denied", `Service not found: ${audience}`);
  }
  if (req.dpopError) {
    return deny(400, "invalid_dpop_proof", `Invalid DPoP proof: ${req.dpopError}`);
  }
  const scope = scopeFor(req);
  const tokenType = req.dpopBound ? "DPoP" : "Bearer";
  response.body = { access_token: response.body.access_token, expires_in: ttlFor(req), token_type: tokenType };
  if (scope) response.body.scope = scope;
  log(`issued token: client=${id} aud=${audience} scope="${scope}" type=${tokenType}`);
});

await server.start(port, opt.host);
const actualPort = server.address().port;
// Issuer on the literal loopback address (not "localhost", which may resolve to ::1 first).
const hostForUrl = opt.host.includes(":") ? `[${opt.host}]` : opt.host;
server.issuer.url = `http://${hostForUrl}:${actualPort}/`; // setter keeps the trailing slash
const issuer = server.issuer.url;
process.stdout.write(
  JSON.stringify({
    event: "ready",
    issuer,
    port: actualPort,
    token_endpoint: `${issuer}oauth/token`,
    jwks_uri: `${issuer}.well-known/jwks.json`,
    client_id: opt["client-id"],
    audiences,
  }) + "\n",
);
log(`listening, issuer ${issuer}`);

let stopping = false;
function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  // Don't wait for keep-alive connections to drain.
  setTimeout(() => process.exit(0), 500).unref();
  server.stop().then(() => process.exit(0), () => process.exit(0));
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
if (!opt["ignore-stdin"]) {
  process.stdin.on("end", () => shutdown("stdin closed"));
  process.stdin.on("error", () => shutdown("stdin error"));
  process.stdin.resume();
}
