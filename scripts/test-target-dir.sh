#!/usr/bin/env bash
# usage: scripts/test-target-dir.sh
#
# Proves the scripts run the binary cargo just built, not one under ./target: clones the
# repository's HEAD into a temporary folder, plants a decoy ./target/debug/handler and
# ./target/x86_64-unknown-linux-musl/release/handler that only fail, then runs
# `dev.sh --smoke` and `build.sh` with CARGO_TARGET_DIR pointing elsewhere, and checks each
# ran or copied the binary from that directory, built during this run.
set -euo pipefail
[[ $# -eq 0 ]] || { echo "usage: scripts/test-target-dir.sh" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { echo "==> $*"; }
die() { echo "test-target-dir.sh: error: $*" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CLONE="$WORK/clone"
export CARGO_TARGET_DIR="$WORK/cargo-target"

step "clone of HEAD without ./target, with decoy binaries where ./target would be"
git clone --quiet --no-hardlinks "$ROOT" "$CLONE"
for decoy in "$CLONE/target/debug/handler" "$CLONE/target/x86_64-unknown-linux-musl/release/handler"; do
  mkdir -p "$(dirname "$decoy")"
  printf '#!/bin/sh\necho "stale decoy binary ran" >&2\nexit 97\n' >"$decoy"
  chmod +x "$decoy"
done
# The provider's node_modules are not in git: reuse the installed ones when present.
if [[ -d "$ROOT/scripts/oidc-provider/node_modules" ]]; then
  cp -a "$ROOT/scripts/oidc-provider/node_modules" "$CLONE/scripts/oidc-provider/"
fi
touch "$WORK/started"

step "dev.sh --smoke with CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
bash "$CLONE/scripts/dev.sh" --smoke | tee "$WORK/dev.log"
ran=$(sed -n 's/^    binary: //p' "$WORK/dev.log" | head -n1)
[[ "$ran" == "$CARGO_TARGET_DIR/debug/handler" ]] || die "dev.sh ran '$ran', not $CARGO_TARGET_DIR/debug/handler"
[[ "$ran" -nt "$WORK/started" ]] || die "$ran was not built by this run"

step "build.sh with CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
bash "$CLONE/scripts/build.sh"
built="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/handler"
[[ "$built" -nt "$WORK/started" ]] || die "$built was not built by this run"
cmp -s "$built" "$CLONE/handler" || die "./handler is not the binary cargo built ($built)"
if grep -q "stale decoy" "$CLONE/handler"; then die "build.sh copied the decoy"; fi

echo "test-target-dir.sh: OK (ran $ran; copied $built)"
