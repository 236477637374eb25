#!/usr/bin/env bash
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds the cargo-fuzz targets under fuzz/ and runs each one for SECONDS (default 20),
# or only the TARGETs named. Exits non-zero if any target crashes, fails an assertion,
# leaks past the memory limit or times out on an input; the input is kept under
# fuzz/artifacts/<target>/ (see fuzz/README.md for reproducing and minimising it).
#
# The one Rust toolchain here is stable; cargo-fuzz needs nightly-only flags
# (-Zsanitizer, sancov passes), so they are enabled with RUSTC_BOOTSTRAP=1.
# cargo-fuzz itself is installed with `cargo install` (pinned) when missing.
#
# Env: FUZZ_CORPUS_DIR   where the grown corpus lives (default: a temporary directory, removed
#                        at exit); the committed seeds in fuzz/corpus/<target>/ are only read.
#      FUZZ_SANITIZER    address (default) or none
#      FUZZ_JOBS         parallel fuzzing processes per target (default 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
die() { echo "fuzz.sh: error: $*" >&2; exit 1; }

SECONDS_EACH="${1:-20}"
[[ "$SECONDS_EACH" =~ ^[0-9]+$ && "$SECONDS_EACH" -gt 0 ]] || die "usage: scripts/fuzz.sh [SECONDS] [TARGET...]"
shift || true
ALL_TARGETS=(bearer_header token_parse claims_check invocation_envelope key_parse dpop_proof claim_rules)
TARGETS=("${@:-${ALL_TARGETS[@]}}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t (known: ${ALL_TARGETS[*]})"
done
SANITIZER="${FUZZ_SANITIZER:-address}"
JOBS="${FUZZ_JOBS:-1}"
CARGO_FUZZ_VERSION=0.13.2
export RUSTC_BOOTSTRAP=1

step "cargo-fuzz $CARGO_FUZZ_VERSION"
if cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "    installed"
else
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
command -v c++ >/dev/null || die "a C++ compiler is needed to build libFuzzer (Debian: apt-get install g++)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CORPUS_ROOT="${FUZZ_CORPUS_DIR:-$WORK/corpus}"

step "cargo fuzz build (sanitizer: $SANITIZER)"
cargo fuzz build --sanitizer "$SANITIZER"
# shellcheck source=scripts/cargo-exe.sh
source "$ROOT/scripts/cargo-exe.sh"
FUZZ_TARGET_DIR=$(cargo_target_dir --manifest-path fuzz/Cargo.toml) || die "cargo metadata failed"
for t in "${TARGETS[@]}"; do
  [[ -x "$FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" ]] || die "target $t was not built"
done

failed=()
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$CORPUS_ROOT/$t"
  log="$WORK/$t.log"
  step "fuzz $t for ${SECONDS_EACH}s (seeds: fuzz/corpus/$t, corpus: $CORPUS_ROOT/$t)"
  set +e
  cargo fuzz run --sanitizer "$SANITIZER" --jobs "$JOBS" "$t" "$CORPUS_ROOT/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict=fuzz/dict/jose.dict >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)"
  corpus="$(find "$CORPUS_ROOT/$t" -type f | wc -l)"
  if [[ $rc -eq 0 ]]; then
    result="ok"
  else
    result="FAILED (exit $rc)"
    failed+=("$t")
    echo "---- last lines of the $t run ----"
    tail -n 40 "$log"
    ls -1 "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|    fuzz/artifacts/$t/|" || true
  fi
  summary+=("$(printf '%-20s %6ss %12s execs %6s corpus %6s MB  %s' "$t" "$SECONDS_EACH" "${execs:-?}" "$corpus" "${rss:-?}" "$result")")
done

step "summary"
printf '    %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  die "fuzzing found problems in: ${failed[*]} (inputs under fuzz/artifacts/)"
fi
echo "fuzz.sh: OK (${#TARGETS[@]} targets, ${SECONDS_EACH}s each)"
