#!/usr/bin/env bash
# usage: scripts/test.sh
#
# Runs every correctness test: unit and integration tests (cargo test, including the
# end-to-end tests against the local OIDC provider process and the examples/mcp tests with
# the official MCP TypeScript client), the .funcignore check and the dev.sh smoke run.
# Installs the pinned local provider, MCP client and Azurite (tests/storage.rs, tests/storage_identity.rs) (npm ci) on first run.
# Needs: cargo, node >= 20.19 + npm, curl, python3 with venv.
set -euo pipefail
[[ $# -eq 0 ]] || { echo "usage: scripts/test.sh" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> local OIDC provider, MCP TypeScript client and Azurite storage emulator (npm ci, first run only)"
for dir in scripts/oidc-provider scripts/mcp-client scripts/azurite; do
  if [[ ! -d $dir/node_modules ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund
  fi
done

echo "==> OpenAPI validator (pip, pinned, into scripts/openapi-validator/.venv, first run only)"
if [[ ! -x scripts/openapi-validator/.venv/bin/python ]]; then
  python3 -m venv scripts/openapi-validator/.venv
  scripts/openapi-validator/.venv/bin/python -m pip install -q -r scripts/openapi-validator/requirements.txt
fi

echo "==> cargo test"
# The examples as programs (tests/example_mcp.rs starts examples/mcp as the host would);
# `cargo test` alone builds examples only as test harnesses.
cargo build --locked --examples
cargo test --locked --all-targets
# `--all-targets` leaves out doc tests: the examples in the rustdoc (the testing kit's among them).
cargo test --locked --doc

echo "==> .funcignore uploads only the app"
scripts/check-funcignore.sh

echo "==> publish.sh stages exactly the app (Windows package: host.json names handler.exe)"
scripts/test-publish.sh

echo "==> dev.sh --smoke"
scripts/dev.sh --smoke

echo "==> scripts run what cargo built: CARGO_TARGET_DIR elsewhere, a clone with a stale ./target"
scripts/test-target-dir.sh

echo "==> all tests passed"
