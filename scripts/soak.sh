#!/usr/bin/env bash
# usage: scripts/soak.sh            (SOAK_SECONDS=300 by default; e.g. SOAK_SECONDS=60 scripts/soak.sh)
#
# Soak test of the release `handler` on loopback, no fault injected:
#   - builds the release handler where cargo puts it (skip with HANDLER_BIN=/path/to/handler);
#   - serves a static OpenID discovery document and JWK Set (keys from tests/fixtures/rsa-a.pem
#     and rsa-b.pem) from a python3 http.server on 127.0.0.1, counting key set fetches;
#   - signs tokens with python3 + cryptography: valid (more distinct ones than the verified-token
#     cache holds, so it keeps evicting), invalid (bad signature, expired, wrong audience,
#     alg none, garbage, malformed headers) and random-kid ones;
#   - drives them with wrk (a Lua script picks a random request per call) in both protocol
#     modes at once: forwarding `GET /api/api-a` and invocation `POST /api-a` with a JSON
#     envelope as in tests/fixtures/invocation/http-get.json;
#   - samples the handler's RSS every SOAK_SAMPLE_SECONDS.
# Fails on: any 5xx (HTTP status, or `statusCode` inside an invocation answer), any wrk
# connect/timeout error, an answer that is neither 200 nor 400/401, the handler exiting, RSS
# growth after warm-up above SOAK_RSS_GROWTH_KIB, or more key set fetches than the refresh and
# cooldown settings allow. Every process it starts is stopped on exit (trap).
#
# Env: SOAK_SECONDS (300)  SOAK_WARMUP_SECONDS (duration/5, at most 60)  SOAK_SAMPLE_SECONDS (5)
#      SOAK_RSS_GROWTH_KIB (16384)  SOAK_CONNECTIONS (16)  SOAK_THREADS (2)
#      SOAK_RUST_LOG (warn)  HANDLER_BIN (build the release handler)
#      SOAK_KEEP (set to keep the work directory with logs, tokens and RSS samples)
# Needs: cargo, python3 (installs `cryptography` with pip if missing), wrk (installed with
# apt-get when missing and running as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
die() { echo "soak.sh: error: $*" >&2; exit 1; }
[[ $# -eq 0 ]] || { echo "usage: [SOAK_SECONDS=N] scripts/soak.sh" >&2; exit 2; }

DURATION="${SOAK_SECONDS:-300}"
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 10 ]] || die "SOAK_SECONDS must be a whole number >= 10"
DEFAULT_WARMUP=$(( DURATION / 5 < 60 ? DURATION / 5 : 60 ))
WARMUP="${SOAK_WARMUP_SECONDS:-$DEFAULT_WARMUP}"
SAMPLE="${SOAK_SAMPLE_SECONDS:-5}"
RSS_LIMIT_KIB="${SOAK_RSS_GROWTH_KIB:-16384}"
CONNECTIONS="${SOAK_CONNECTIONS:-16}"
THREADS="${SOAK_THREADS:-2}"
COOLDOWN=30   # AUTH_JWKS_COOLDOWN_SECONDS (the default, set explicitly below)
REFRESH=600   # AUTH_JWKS_REFRESH_SECONDS

WORK="$(mktemp -d /tmp/azfn-soak.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "${SOAK_KEEP:-}" ]]; then echo "soak.sh: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- tools ----
step "tools: python3 + cryptography, wrk"
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography
if ! command -v wrk >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk >/dev/null; }
  else
    die "wrk not found; install it with: sudo apt-get install wrk"
  fi
fi
echo "    $(python3 -c 'import cryptography; print("cryptography", cryptography.__version__)'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"

# ---- handler ----
if [[ -n "${HANDLER_BIN:-}" ]]; then
  BIN="$HANDLER_BIN"
  step "handler: using $BIN"
else
  step "cargo build --release --bin handler"
  # shellcheck source=scripts/cargo-exe.sh
  source "$ROOT/scripts/cargo-exe.sh"
  BIN=$(cargo_exe handler --release --bin handler) || die "cargo build failed"
fi
[[ -x "$BIN" ]] || die "$BIN is not an executable"

# ---- key server ----
step "key server: discovery + JWK Set on 127.0.0.1 (python3 http.server)"
mkdir -p "$WORK/www/.well-known"
cat >"$WORK/keyserver.py" <<'PY'
"""Static discovery + JWKS on 127.0.0.1:<port>; one line per request in requests.log."""
import http.server, os, sys
root, port_file, log_file = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(log_file, "a", buffering=1)
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=root, **kw)
    def log_message(self, fmt, *args):
        log.write(self.path + "\n")
    def guess_type(self, path):
        return "application/json"
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
PY
python3 "$WORK/keyserver.py" "$WORK/www" "$WORK/keyserver.port" "$WORK/keyserver.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s "$WORK/keyserver.port" ]] && break; sleep 0.1; done
[[ -s "$WORK/keyserver.port" ]] || die "key server did not start"
KEY_PORT="$(cat "$WORK/keyserver.port")"
ISSUER="http://127.0.0.1:$KEY_PORT/"
echo "    issuer $ISSUER"

# ---- tokens and requests ----
step "tokens: signing with tests/fixtures/rsa-a.pem and rsa-b.pem"
python3 - "$ROOT" "$WORK" "$ISSUER" "$DURATION" <<'PY'
import base64, json, os, random, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

root, work, issuer, duration = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
audience = "https://api-a.example.com"
rng = random.Random(20261123)

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def load(name):
    with open(os.path.join(root, "tests/fixtures", name), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)

keys = {"soak-key-a": load("rsa-a.pem"), "soak-key-b": load("rsa-b.pem")}

def jwk(kid, key):
    n = key.public_key().public_numbers()
    as_bytes = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64(as_bytes(n.n)), "e": b64(as_bytes(n.e))}

www = os.path.join(work, "www")
with open(os.path.join(www, "jwks.json"), "w") as f:
    json.dump({"keys": [jwk(k, v) for k, v in keys.items()]}, f)
with open(os.path.join(www, ".well-known", "openid-configuration"), "w") as f:
    json.dump({"issuer": issuer, "jwks_uri": issuer + "jwks.json"}, f)

now = int(time.time())
def claims(i, **over):
    c = {"iss": issuer, "sub": f"client-{i}@clients", "aud": audience, "iat": now, "exp": now + duration + 1800,
         "azp": f"client-{i}", "scope": "read:a", "gty": "client-credentials", "jti": f"soak-{i}"}
    c.update(over)
    return c

def sign(header, payload, key):
    msg = (b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
           b64(json.dumps(payload, separators=(",", ":")).encode()))
    return msg + "." + b64(key.sign(msg.encode(), padding.PKCS1v15(), hashes.SHA256()))

def token(i, kid="soak-key-a", key=None, **over):
    return sign({"alg": "RS256", "typ": "JWT", "kid": kid}, claims(i, **over), key or keys[kid])

auth = []  # (class, Authorization value or None)
# Valid: 3,000 distinct tokens (3x the default cache of 1,000), from both keys.
for i in range(3000):
    kid = "soak-key-a" if i % 2 else "soak-key-b"
    auth.append(("valid", "Bearer " + token(i, kid)))
# Random kids: signed with key a, naming a kid that is never in the key set.
for i in range(600):
    auth.append(("random-kid", "Bearer " + token(i, kid=f"rnd-{rng.getrandbits(64):016x}", key=keys["soak-key-a"])))
# Invalid in assorted ways.
for i in range(400):
    good = token(10_000 + i)
    head, body, sig = good.split(".")
    auth.append(("invalid", "Bearer " + f"{head}.{body}.{sig[:-4]}AAAA"))           # bad signature
    auth.append(("invalid", "Bearer " + token(20_000 + i, exp=now - 3600)))       # expired
    auth.append(("invalid", "Bearer " + token(30_000 + i, aud="https://other")))  # wrong audience
none = b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims(0)).encode()) + "."
auth += [("invalid", "Bearer " + none)] * 50
auth += [("invalid", "Bearer abc.def.ghi")] * 50 + [("invalid", "Bearer a b")] * 50
auth += [("invalid", None)] * 50 + [("invalid", "Basic dXNlcjpwYXNz")] * 50

with open(os.path.join(root, "tests/fixtures/invocation/http-get.json")) as f:
    envelope = json.load(f)

lines = []
for cls, value in auth:
    for mode in ("F", "I"):
        if mode == "F":
            lines.append(f"F\t{value or ''}")
        else:
            env = json.loads(json.dumps(envelope))
            if value is None:
                del env["Data"]["req"]["Headers"]["Authorization"]
            else:
                env["Data"]["req"]["Headers"]["Authorization"] = [value]
            lines.append("I\t" + json.dumps(env, separators=(",", ":")))
rng.shuffle(lines)
with open(os.path.join(work, "requests.tsv"), "w") as f:
    f.write("\n".join(lines) + "\n")
counts = {}
for cls, _ in auth:
    counts[cls] = counts.get(cls, 0) + 1
print("    requests: %d distinct (%s) x 2 modes" % (len(auth), ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))
PY

cat >"$WORK/soak.lua" <<'LUA'
-- Picks a random prepared request; counts HTTP statuses and, for invocation answers, the
-- statusCode inside the envelope. Tallies are gathered from every thread in done().
local requests = {}
local threads = {}
http_status = {}
inner_status = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  for line in io.lines(path) do
    local mode, value = line:match("^(%a)\t(.*)$")
    if mode == "F" then
      local headers = { ["Host"] = "soak.azurewebsites.net", ["x-functions-key"] = "soak" }
      if value ~= "" then headers["Authorization"] = value end
      table.insert(requests, wrk.format("GET", "/api/api-a?code=soak", headers, nil))
    else
      local headers = { ["Content-Type"] = "application/json; charset=utf-8",
                        ["User-Agent"] = "Azure-Functions-Host/4.1037.0" }
      table.insert(requests, wrk.format("POST", "/api-a", headers, value))
    end
  end
  math.randomseed(os.time() + tonumber(tostring(requests):match("0x(%x+)") or "0", 16) % 1000)
end

function request()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  http_status[status] = (http_status[status] or 0) + 1
  if body and body:sub(1, 1) == "{" then
    local code = body:match('"statusCode":(%d+)')
    if code then inner_status[code] = (inner_status[code] or 0) + 1 end
  end
end

function done(summary, latency, requests_)
  local http, inner = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("http_status")) do http[k] = (http[k] or 0) + v end
    for k, v in pairs(thread:get("inner_status")) do inner[k] = (inner[k] or 0) + v end
  end
  local out = io.open(os.getenv("SOAK_RESULT"), "w")
  for k, v in pairs(http) do out:write(string.format("http %s %d\n", k, v)) end
  for k, v in pairs(inner) do out:write(string.format("inner %s %d\n", k, v)) end
  local e = summary.errors
  out:write(string.format("errors connect %d read %d write %d timeout %d status %d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
  out:write(string.format("total %d seconds %.1f p50_ms %.2f p99_ms %.2f max_ms %.2f\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
  out:close()
end
LUA

# ---- handler process ----
HANDLER_PORT="$(free_port)"
step "handler on 127.0.0.1:$HANDLER_PORT (app root $ROOT: forwarding GET /api/api-a and invocation POST /api-a)"
env -i PATH="$PATH" \
  FUNCTIONS_CUSTOMHANDLER_PORT="$HANDLER_PORT" FUNCTIONS_APP_ROOT_PATH="$ROOT" \
  AUTH_ISSUER="$ISSUER" AUTH_AUDIENCE="https://api-a.example.com" \
  AUTH_JWKS_COOLDOWN_SECONDS="$COOLDOWN" AUTH_JWKS_REFRESH_SECONDS="$REFRESH" \
  RUST_LOG="${SOAK_RUST_LOG:-warn}" \
  "$BIN" >"$WORK/handler.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
ready=0
for _ in $(seq 1 200); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$HANDLER_PORT/', timeout=1)" 2>/dev/null; then
    ready=1; break
  fi
  kill -0 "$HPID" 2>/dev/null || die "handler exited at start-up: $(tail -n 5 "$WORK/handler.log")"
  sleep 0.1
done
[[ $ready -eq 1 ]] || die "handler did not answer GET / within 20 s"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$HPID/status" 2>/dev/null || echo 0; }
echo "    pid $HPID, RSS at start $(rss_kib) KiB"

# ---- load ----
step "wrk: ${DURATION}s, $THREADS threads, $CONNECTIONS connections; RSS every ${SAMPLE}s, warm-up ${WARMUP}s"
export SOAK_RESULT="$WORK/result.txt"
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s -s "$WORK/soak.lua" \
  "http://127.0.0.1:$HANDLER_PORT" -- "$WORK/requests.tsv" >"$WORK/wrk.log" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")

started=$(date +%s)
: >"$WORK/rss.tsv"
baseline=""
peak=0
while kill -0 "$WRK_PID" 2>/dev/null; do
  kill -0 "$HPID" 2>/dev/null || die "the handler exited during the soak: $(tail -n 5 "$WORK/handler.log")"
  elapsed=$(( $(date +%s) - started ))
  rss="$(rss_kib)"
  printf '%s\t%s\n' "$elapsed" "$rss" >>"$WORK/rss.tsv"
  if (( elapsed >= WARMUP )); then
    [[ -n "$baseline" ]] || baseline="$rss"
    (( rss > peak )) && peak="$rss"
  fi
  (( elapsed % 30 < SAMPLE )) && echo "    t=${elapsed}s RSS ${rss} KiB"
  sleep "$SAMPLE"
done
wait "$WRK_PID" || die "wrk failed: $(tail -n 5 "$WORK/wrk.log")"
kill -0 "$HPID" 2>/dev/null || die "the handler exited during the soak"
final="$(rss_kib)"
[[ -n "$baseline" ]] || { baseline="$final"; peak="$final"; }
(( final > peak )) && peak="$final"

# ---- verdict ----
step "summary"
[[ -s "$WORK/result.txt" ]] || die "wrk wrote no result: $(tail -n 20 "$WORK/wrk.log")"
sed 's/^/    /' "$WORK/wrk.log" | grep -E 'Latency|Req/Sec|requests in|Requests/sec|Socket errors|Non-2xx' || true
sed 's/^/    /' "$WORK/result.txt" | sort
key_fetches="$(grep -c '^/jwks.json' "$WORK/keyserver.log" || true)"
discovery="$(grep -c '^/.well-known/openid-configuration' "$WORK/keyserver.log" || true)"
max_fetches=$(( 2 + DURATION / COOLDOWN + DURATION / REFRESH ))
growth=$(( peak - baseline ))
echo "    key server: $key_fetches key set fetches (at most $max_fetches allowed), $discovery discovery fetches"
echo "    RSS: start-of-measure ${baseline} KiB, peak ${peak} KiB, end ${final} KiB, growth after warm-up ${growth} KiB (limit ${RSS_LIMIT_KIB} KiB)"

problems=()
awk '$1 == "http" && $2 >= 500 {bad += $3} END {exit bad > 0}' "$WORK/result.txt" || problems+=("5xx HTTP answers")
awk '$1 == "inner" && $2 >= 500 {bad += $3} END {exit bad > 0}' "$WORK/result.txt" || problems+=("5xx inside invocation answers")
awk '($1 == "http" || $1 == "inner") && $2 != 200 && $2 != 400 && $2 != 401 {bad += $3} END {exit bad > 0}' "$WORK/result.txt" \
  || problems+=("answers other than 200/400/401")
for needed in "http 200" "http 401" "inner 200" "inner 401" "inner 400"; do
  grep -q "^$needed " "$WORK/result.txt" || problems+=("no '$needed' answers at all")
done
awk '$1 == "errors" && ($3 > 0 || $9 > 0) {exit 1}' "$WORK/result.txt" || problems+=("wrk connect or timeout errors")
(( key_fetches <= max_fetches )) || problems+=("$key_fetches key set fetches > $max_fetches")
(( growth <= RSS_LIMIT_KIB )) || problems+=("RSS grew ${growth} KiB after warm-up > ${RSS_LIMIT_KIB} KiB")
if grep -qiE 'panicked|ERROR' "$WORK/handler.log"; then problems+=("errors in the handler log"); grep -iE 'panicked|ERROR' "$WORK/handler.log" | head -n 5; fi

if [[ ${#problems[@]} -gt 0 ]]; then
  SOAK_KEEP=1
  die "soak FAILED: ${problems[*]}"
fi
echo "soak.sh: OK (${DURATION}s, $(awk '$1 == "total" {print $2}' "$WORK/result.txt") requests, no 5xx, RSS growth ${growth} KiB)"
