#!/usr/bin/env bash
# usage: scripts/test-windows.sh [--profile NAME]
#
# Builds handler.exe (x86_64-pc-windows-gnu, cargo profile NAME, default dev: 80 s here; the
# shipped fat-LTO release build took 3 min more and passes the same tests with --profile release)
# and runs it under Wine in tests/windows_exe.rs: readiness on FUNCTIONS_CUSTOMHANDLER_PORT, keys
# from the real local OIDC provider, the README's main answer rows, Ctrl-C and SIGTERM.
#
# On a clean Debian/Ubuntu machine it installs what it needs when run as root: the Rust target
# (rustup), wine + wine64, the mingw-w64 C compiler, nasm (aws-lc) and node + npm if missing.
# Not root: it says what to install. Measured on 2 cores, from nothing installed: 1 min 55 s
# (packages 14 s, dev build 80 s after the Linux test build, Wine prefix 9 s, tests 9 s).
#
# Wine only: scripts/wine/processprng.c is built into a bcryptprimitives.dll next to a COPY of
# handler.exe under the target dir (Debian's Wine 8.0 lacks ProcessPrng, which Rust's std
# imports). It is test-only: never in ./handler.exe, never in a publish package.
# Wine runs quietly (WINEDEBUG=-all), in a private prefix under the target dir, with no display;
# every process it starts is stopped on exit (wineserver -k for the private prefix).
set -euo pipefail

PROFILE=dev
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) [[ $# -ge 2 ]] || { echo "usage: scripts/test-windows.sh [--profile NAME]" >&2; exit 2; }
               PROFILE="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/test-windows.sh [--profile NAME]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=x86_64-pc-windows-gnu
START=$SECONDS
step() { echo "==> [$((SECONDS - START)) s] $*"; }
die() { echo "test-windows.sh: error: $*" >&2; exit 1; }
command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"

# ---------------------------------------------------------------------------------------------
# shellcheck source=scripts/cargo-exe.sh
source "$ROOT/scripts/cargo-exe.sh"
step "Rust target $TARGET"
ensure_rust_target "$TARGET" || die "cannot add the Rust target $TARGET"

step "system packages (wine, wine64, mingw-w64 C compiler, nasm)"
missing=()
command -v wine >/dev/null || missing+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
command -v nasm >/dev/null || missing+=(nasm)
command -v node >/dev/null || missing+=(nodejs npm)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "    found"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "    installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Recommends would pull in fonts, GStreamer, X libraries... none of which a console program needs.
  apt_install() { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"; }
  apt_install >/dev/null || { apt-get update -qq -o DPkg::Lock::Timeout=600 && apt_install >/dev/null; }
else
  die "missing ${missing[*]}; install with: sudo apt-get install --no-install-recommends ${missing[*]}"
fi
WINEDEBUG=-all wine --version

# ---------------------------------------------------------------------------------------------
step "cargo build --profile $PROFILE --target $TARGET --bin handler"
BUILT=$(cargo_exe handler --locked --profile "$PROFILE" --target "$TARGET" --bin handler) || die "cargo build failed"
[[ -f "$BUILT" ]] || die "$BUILT was not produced"
TARGET_DIR="$(cargo_target_dir)"

# A scratch app dir: a copy of handler.exe plus the Wine-only shim, never the app root.
RUN_DIR="$TARGET_DIR/wine-e2e"
rm -rf "$RUN_DIR/bin"
mkdir -p "$RUN_DIR/bin"
ln -f "$BUILT" "$RUN_DIR/bin/handler.exe" 2>/dev/null || cp "$BUILT" "$RUN_DIR/bin/handler.exe"
echo "    $RUN_DIR/bin/handler.exe ($(stat -c %s "$BUILT") bytes)"

step "Wine-only ProcessPrng shim: scripts/wine/processprng.c -> bcryptprimitives.dll (test-only)"
x86_64-w64-mingw32-gcc -O2 -shared -s -o "$RUN_DIR/bin/bcryptprimitives.dll" \
  "$ROOT/scripts/wine/processprng.c" "$ROOT/scripts/wine/processprng.def" -ladvapi32

# ---------------------------------------------------------------------------------------------
export WINEPREFIX="$RUN_DIR/prefix" WINEDEBUG=-all WINEARCH=win64
# No Mono/Gecko install prompts (mscoree, mshtml), no desktop menu entries, no display.
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d" DISPLAY=""
unset WAYLAND_DISPLAY
WINESERVER="$(command -v wineserver || echo /usr/lib/wine/wineserver)"
[[ -x "$WINESERVER" ]] || WINESERVER=/usr/lib/wine/wineserver64
cleanup() {
  local rc=$?
  # Ends every Wine process of the private prefix (and its wineserver), nothing else.
  # -k kills them; -w returns once they and the wineserver are gone.
  if [[ -x "$WINESERVER" ]]; then
    timeout 20 "$WINESERVER" -k >/dev/null 2>&1 || true
    timeout 20 "$WINESERVER" -w >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "Wine prefix $WINEPREFIX (wineboot, non-interactive)"
if [[ -f "$WINEPREFIX/system.reg" ]]; then
  echo "    exists"
else
  timeout 180 wine wineboot --init >/dev/null 2>&1 || die "wineboot --init failed or took over 180 s"
  timeout 60 "$WINESERVER" -w || true
fi

# ---------------------------------------------------------------------------------------------
step "local OIDC provider (npm ci, first run only)"
if [[ ! -d scripts/oidc-provider/node_modules ]]; then
  npm ci --prefix scripts/oidc-provider --no-audit --no-fund
fi

step "tests/windows_exe.rs against handler.exe under Wine"
export AZFN_HANDLER_EXE="$RUN_DIR/bin/handler.exe" AZFN_WINE="$(command -v wine)"
cargo test --locked --test windows_exe -- --ignored --test-threads=2

step "handler.exe under Wine: all checks passed (total $((SECONDS - START)) s)"
