#!/usr/bin/env bash
# usage: scripts/test.sh
#
# Runs every correctness test: unit and integration tests (cargo test, including the
# end-to-end test against the local OIDC provider process), the .funcignore check and the
# dev.sh smoke run. Installs the pinned local provider (npm ci) on first run.
# Needs: cargo, node >= 20.19 + npm, curl, python3.
set -euo pipefail
[[ $# -eq 0 ]] || { echo "usage: scripts/test.sh" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> local OIDC provider (npm ci, first run only)"
if [[ ! -d scripts/oidc-provider/node_modules ]]; then
  npm ci --prefix scripts/oidc-provider --no-audit --no-fund
fi

echo "==> cargo test"
cargo test --locked --all-targets

echo "==> .funcignore uploads only the app"
scripts/check-funcignore.sh

echo "==> publish.sh stages exactly the app (Windows package: host.json names handler.exe)"
scripts/test-publish.sh

echo "==> dev.sh --smoke"
scripts/dev.sh --smoke

echo "==> scripts run what cargo built: CARGO_TARGET_DIR elsewhere, a clone with a stale ./target"
scripts/test-target-dir.sh

echo "==> all tests passed"
