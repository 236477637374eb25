#!/usr/bin/env bash
# usage: scripts/deny.sh [--offline-only]
#
# Supply-chain checks with cargo-deny against deny.toml:
#   1. cargo deny check bans licenses sources   (offline; always runs; fails the script)
#   2. cargo deny check advisories              (RustSec database from github.com)
# Step 2 runs only where github.com answers; otherwise it is SKIPPED with a message and the
# script still exits 0, so CI on a machine without that access stays green while a machine
# with it gets the full check. --offline-only skips step 2 outright.
# Installs cargo-deny (pinned) with `cargo install` when it is missing.
# Env: ADVISORY_DB_URL  what to probe and fetch (default https://github.com/rustsec/advisory-db)
#      PROBE_SECONDS    how long the reachability probe may take (default 15)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
DENY_VERSION=0.20.2
ADVISORY_DB_URL="${ADVISORY_DB_URL:-https://github.com/rustsec/advisory-db}"
PROBE_SECONDS="${PROBE_SECONDS:-15}"
OFFLINE_ONLY=0
case "${1:-}" in
  "") ;;
  --offline-only) OFFLINE_ONLY=1 ;;
  *) echo "usage: scripts/deny.sh [--offline-only]" >&2; exit 2 ;;
esac

step "cargo-deny $DENY_VERSION"
if cargo deny --version 2>/dev/null | grep -q "cargo-deny $DENY_VERSION"; then
  echo "    installed"
else
  cargo install cargo-deny --locked --version "$DENY_VERSION"
fi

step "cargo deny check bans licenses sources"
cargo deny check bans licenses sources

if [[ $OFFLINE_ONLY -eq 1 ]]; then
  echo "==> advisories: SKIPPED (--offline-only)"
  exit 0
fi
step "advisories: probing $ADVISORY_DB_URL (at most ${PROBE_SECONDS}s)"
if timeout "$PROBE_SECONDS" git ls-remote --exit-code "$ADVISORY_DB_URL" HEAD >/dev/null 2>&1; then
  step "cargo deny check advisories"
  # Point cargo-deny at the same URL (it clones the database into $CARGO_HOME/advisory-dbs).
  cfg="$(mktemp)"
  trap 'rm -f "$cfg"' EXIT
  sed "s|^db-urls = .*|db-urls = [\"$ADVISORY_DB_URL\"]|" deny.toml > "$cfg"
  cargo deny --config "$cfg" check advisories
else
  echo "==> advisories: SKIPPED: the RustSec advisory database at $ADVISORY_DB_URL is unreachable from"
  echo "    this machine (it is fetched from github.com). Run 'cargo deny check advisories' where"
  echo "    github.com is reachable; bans, licenses and sources were checked above."
fi
