#!/usr/bin/env bash
# usage: scripts/dev.sh [--smoke] [--release]
#
# Runs the handler locally against a real local OpenID Connect provider (scripts/oidc-provider,
# playing Auth0's role): builds `handler`, starts the provider and the handler on loopback with
# ephemeral ports, fetches an access token the way a client does from Auth0, and
#   (default)  prints copy-paste curl commands and keeps both running until Ctrl-C;
#   --smoke    checks no token -> 401, valid token -> 200, tampered token -> 401, then exits
#              0 only if all three answers were right.
#   --release  builds and runs the release handler instead of the debug one (wherever cargo
#              puts it: CARGO_TARGET_DIR is honoured).
# Every process it starts is stopped when it exits (normally, on failure or on Ctrl-C).
# Needs: cargo, node (>= 20.19) + npm, curl.
set -euo pipefail

SMOKE=0
PROFILE=debug
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --release) PROFILE=release ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/dev.sh [--smoke] [--release]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROVIDER_DIR="$ROOT/scripts/oidc-provider"

# The "Auth0 tenant" the provider plays: one machine-to-machine client and one API (audience).
CLIENT_ID="dev-client"
CLIENT_SECRET="dev-secret"
AUDIENCE="https://api-a.local/"
FUNCTION_PATH="/api/api-a"

step() { echo "==> $*"; }
die() { echo "dev.sh: error: $*" >&2; exit 1; }

for tool in cargo node npm curl; do
  command -v "$tool" >/dev/null || die "'$tool' not found on PATH"
done

# Everything here talks to 127.0.0.1: never through a proxy from the environment.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/azfn-dev.XXXXXX")"
HANDLER_PID=""
PROVIDER_PID_SAVED=""
PROVIDER_IN=""

stop_pid() { # stop_pid PID NAME: SIGTERM, wait up to 5 s, then SIGKILL; always reaps
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  echo "==> stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$HANDLER_PID" handler
  # Closing the provider's stdin already makes it exit; SIGTERM covers the rest.
  if [[ -n "${PROVIDER_IN:-}" ]]; then exec {PROVIDER_IN}>&- || true; fi
  stop_pid "$PROVIDER_PID_SAVED" oidc-provider
  if [[ $rc -ne 0 && $SMOKE -eq 1 ]]; then
    for log in "$WORK"/*.log; do
      [[ -s "$log" ]] || continue
      echo "---- $(basename "$log") ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
step "installing the local OIDC provider (npm ci, only when needed)"
if [[ ! -f "$PROVIDER_DIR/node_modules/.package-lock.json" ||
      "$PROVIDER_DIR/package-lock.json" -nt "$PROVIDER_DIR/node_modules/.package-lock.json" ]]; then
  npm ci --prefix "$PROVIDER_DIR" --no-audit --no-fund
else
  echo "    up to date"
fi

step "building handler ($PROFILE)"
# shellcheck source=scripts/cargo-exe.sh
source "$ROOT/scripts/cargo-exe.sh"
if [[ $PROFILE == release ]]; then
  HANDLER_BIN=$(cargo_exe handler --release --bin handler) || die "cargo build failed"
else
  HANDLER_BIN=$(cargo_exe handler --bin handler) || die "cargo build failed"
fi
[[ -x "$HANDLER_BIN" ]] || die "$HANDLER_BIN was not built"
echo "    binary: $HANDLER_BIN"

# Output of both processes: to the terminal in interactive mode, to log files with --smoke
# (shown if the smoke test fails).
if [[ $SMOKE -eq 1 ]]; then
  exec {PROVIDER_ERR}>>"$WORK/oidc-provider.log" {HANDLER_OUT}>>"$WORK/handler.log"
else
  exec {PROVIDER_ERR}>&2 {HANDLER_OUT}>&1
fi

step "starting the local OIDC provider on 127.0.0.1 (ephemeral port)"
# A coprocess: its stdin is a pipe held by this script, so it also exits if this script dies.
coproc PROVIDER { exec node "$PROVIDER_DIR/provider.mjs" --port 0 --host 127.0.0.1 \
  --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --audience "$AUDIENCE" 2>&"$PROVIDER_ERR"; }
PROVIDER_PID_SAVED="$PROVIDER_PID"
PROVIDER_OUT="${PROVIDER[0]}"
PROVIDER_IN="${PROVIDER[1]}"
READY_LINE=""
read -r -t 30 READY_LINE <&"${PROVIDER[0]}" || die "the OIDC provider did not report ready (it exited, or 30 s passed)"
ISSUER="$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' <<<"$READY_LINE")"
TOKEN_ENDPOINT="$(sed -n 's/.*"token_endpoint":"\([^"]*\)".*/\1/p' <<<"$READY_LINE")"
[[ -n "$ISSUER" && -n "$TOKEN_ENDPOINT" ]] || die "unexpected ready line from the provider: $READY_LINE"
echo "    issuer $ISSUER (pid $PROVIDER_PID_SAVED)"

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

step "starting handler as the Functions host would"
PORT="$(free_port)"
WORKER_ID="$(node -e 'console.log(require("crypto").randomUUID())')"
( # the handler must not inherit the provider's stdin pipe, or it would keep the provider alive
  exec {PROVIDER_IN}>&- {PROVIDER_OUT}<&-
  exec env -u AUTH0_DOMAIN -u AUTH_JWKS_URI -u AUTH_PUBLIC_KEY \
    FUNCTIONS_CUSTOMHANDLER_PORT="$PORT" FUNCTIONS_HTTPWORKER_PORT="$PORT" \
    FUNCTIONS_CUSTOMHANDLER_WORKER_ID="$WORKER_ID" FUNCTIONS_HTTPWORKER_ID="$WORKER_ID" \
    FUNCTIONS_APP_ROOT_PATH="$ROOT" \
    AUTH_ISSUER="$ISSUER" AUTH_AUDIENCE="$AUDIENCE" RUST_LOG="${RUST_LOG:-info}" \
    "$HANDLER_BIN"
) >&"$HANDLER_OUT" 2>&1 </dev/null &
HANDLER_PID=$!
HANDLER_URL="http://127.0.0.1:$PORT"
echo "    port $PORT (pid $HANDLER_PID), waiting for GET / (the host's readiness probe, up to 30 s)"
for ((i = 0; ; i++)); do
  curl -s -o /dev/null --max-time 1 "$HANDLER_URL/" && break
  if ! kill -0 "$HANDLER_PID" 2>/dev/null; then
    wait "$HANDLER_PID" && rc=0 || rc=$?
    HANDLER_PID=""
    die "handler exited with code $rc before it was ready (its output is above / below)"
  fi
  (( i < 300 )) || die "handler did not answer GET / within 30 s"
  sleep 0.1
done
FUNCTION_URL="$HANDLER_URL$FUNCTION_PATH"

step "fetching an access token (client credentials, as against Auth0's POST /oauth/token)"
TOKEN_RESPONSE="$(curl -sS --max-time 10 --fail-with-body --request POST --url "$TOKEN_ENDPOINT" \
  --header 'content-type: application/json' \
  --data "{\"client_id\":\"$CLIENT_ID\",\"client_secret\":\"$CLIENT_SECRET\",\"audience\":\"$AUDIENCE\",\"grant_type\":\"client_credentials\"}")" \
  || die "token request failed: $TOKEN_RESPONSE"
TOKEN="$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' <<<"$TOKEN_RESPONSE")"
[[ -n "$TOKEN" ]] || die "no access_token in: $TOKEN_RESPONSE"

# Tampered token: same header and signature, payload changed (sub -> attacker@clients).
b64url_decode() { local s; s="$(tr '_-' '/+' <<<"$1")"; while (( ${#s} % 4 )); do s+="="; done; base64 -d <<<"$s"; }
b64url_encode() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
IFS=. read -r TOK_HEADER TOK_PAYLOAD TOK_SIG <<<"$TOKEN"
TAMPERED_PAYLOAD="$(b64url_decode "$TOK_PAYLOAD" | sed 's/"sub":"[^"]*"/"sub":"attacker@clients"/' | b64url_encode)"
TAMPERED="$TOK_HEADER.$TAMPERED_PAYLOAD.$TOK_SIG"
[[ "$TAMPERED" != "$TOKEN" ]] || die "could not tamper with the token"
echo "    claims: $(b64url_decode "$TOK_PAYLOAD")"

if [[ $SMOKE -eq 0 ]]; then
  cat <<EOF

Handler:        $FUNCTION_URL   (called directly, as the Functions host forwards requests)
OIDC provider:  $ISSUER  (client_id=$CLIENT_ID client_secret=$CLIENT_SECRET audience=$AUDIENCE)

# get a token (same request as against https://YOUR_TENANT.auth0.com/oauth/token)
TOKEN=\$(curl -s --request POST --url '$TOKEN_ENDPOINT' --header 'content-type: application/json' \\
  --data '{"client_id":"$CLIENT_ID","client_secret":"$CLIENT_SECRET","audience":"$AUDIENCE","grant_type":"client_credentials"}' \\
  | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

# no token -> 401
curl -i '$FUNCTION_URL'

# with a token -> 200
curl -i '$FUNCTION_URL' --header "authorization: Bearer \$TOKEN"

# the token fetched above
curl -i '$FUNCTION_URL' --header 'authorization: Bearer $TOKEN'

# tampered token (payload changed, signature kept) -> 401
curl -i '$FUNCTION_URL' --header 'authorization: Bearer $TAMPERED'

Press Ctrl-C to stop the handler and the provider.
EOF
  # Until Ctrl-C, or until either process dies.
  while kill -0 "$HANDLER_PID" 2>/dev/null && kill -0 "$PROVIDER_PID_SAVED" 2>/dev/null; do
    sleep 1
  done
  die "a process exited on its own (handler pid $HANDLER_PID, provider pid $PROVIDER_PID_SAVED)"
fi

# ---------------------------------------------------------------------------------------------
FAILED=0
check() { # check NAME WANT_STATUS WANT_BODY_SUBSTRING WANT_HEADER_SUBSTRING [curl args...]
  local name="$1" want_status="$2" want_body="$3" want_header="$4"; shift 4
  local status body headers ok=1
  status="$(curl -s --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@" "$FUNCTION_URL")" || status="curl-failed"
  body="$(cat "$WORK/body" 2>/dev/null || true)"
  headers="$(tr -d '\r' <"$WORK/headers" 2>/dev/null || true)"
  [[ "$status" == "$want_status" ]] || ok=0
  [[ -z "$want_body" || "$body" == *"$want_body"* ]] || ok=0
  [[ -z "$want_header" ]] || grep -qiF -- "$want_header" <<<"$headers" || ok=0
  if [[ $ok -eq 1 ]]; then
    echo "PASS  $name: $status ${body:0:60}"
  else
    echo "FAIL  $name: got $status body='${body:0:200}', want $want_status${want_body:+ body~'$want_body'}${want_header:+ header~'$want_header'}"
    echo "      headers: $(grep -i '^www-authenticate' <<<"$headers" || echo '(no WWW-Authenticate)')"
    FAILED=$((FAILED + 1))
  fi
}

step "smoke test against $FUNCTION_URL"
check "no token" 401 "No authorization token was found" "WWW-Authenticate: Bearer"
check "valid token" 200 "Authentication successful" "" -H "Authorization: Bearer $TOKEN"
check "tampered token" 401 "" 'error="invalid_token"' -H "Authorization: Bearer $TAMPERED"

if [[ $FAILED -ne 0 ]]; then
  echo "smoke: $FAILED of 3 checks failed"
  exit 1
fi
echo "smoke: 3 passed, 0 failed"
