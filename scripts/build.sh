#!/usr/bin/env bash
# usage: scripts/build.sh [--windows]
#
# Release build of `handler` for Azure, copied to the app root (next to host.json, whose
# customHandler.description.defaultExecutablePath names it).
#   default    static Linux binary, target x86_64-unknown-linux-musl  -> ./handler
#              (needs Debian's musl-tools for the C code of aws-lc-sys)
#   --windows  x86_64-pc-windows-gnu                                  -> ./handler.exe
#              (needs Debian's mingw-w64 and nasm)
# Missing Rust targets are added with rustup; missing apt packages are installed when run as
# root, otherwise the script says what to install.
set -euo pipefail

case "${1:-}" in
  "") TARGET=x86_64-unknown-linux-musl; EXE=handler; TOOLS=("x86_64-linux-musl-gcc"); PKGS=(musl-tools) ;;
  --windows) TARGET=x86_64-pc-windows-gnu; EXE=handler.exe; TOOLS=(x86_64-w64-mingw32-gcc nasm); PKGS=(mingw-w64 nasm) ;;
  *) echo "usage: scripts/build.sh [--windows]" >&2; exit 2 ;;
esac
[[ $# -le 1 ]] || { echo "usage: scripts/build.sh [--windows]" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"

# shellcheck source=scripts/cargo-exe.sh
source "$ROOT/scripts/cargo-exe.sh"
step "Rust target $TARGET"
ensure_rust_target "$TARGET" || die "cannot add the Rust target $TARGET"

step "C toolchain for $TARGET (${TOOLS[*]})"
missing=()
for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "    found"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "    missing ${missing[*]}: installing ${PKGS[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${PKGS[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${PKGS[@]}"; }
else
  die "missing ${missing[*]}; install it with: sudo apt-get install ${PKGS[*]}  (Debian/Ubuntu)"
fi

step "cargo build --release --target $TARGET --bin handler"
BUILT=$(cargo_exe handler --release --target "$TARGET" --bin handler) || die "cargo build failed"
[[ -f "$BUILT" ]] || die "$BUILT was not produced"

step "copying $BUILT to ./$EXE (the app root)"
cp -f "$BUILT" "$ROOT/$EXE.tmp"
chmod 0755 "$ROOT/$EXE.tmp"
mv -f "$ROOT/$EXE.tmp" "$ROOT/$EXE"
command -v file >/dev/null && file "$ROOT/$EXE" | sed 's/^/    /'
SIZE=$(stat -c %s "$ROOT/$EXE")
echo "    size: $SIZE bytes ($(( (SIZE + 1048575) / 1048576 )) MiB)"

HOST_EXE="$(sed -n 's/.*"defaultExecutablePath"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' host.json 2>/dev/null | head -n1)"
if [[ "$EXE" == handler.exe ]]; then
  # The repository's host.json stays Linux; the Windows package gets its own copy.
  echo "    NOTE: a Windows function app's host.json must name handler.exe: scripts/publish.sh <app> --windows"
  echo "          publishes a staged copy that does (docs/deploy.md: Windows function apps)"
elif [[ -n "$HOST_EXE" && "$HOST_EXE" != "$EXE" ]]; then
  echo "    WARNING: host.json has defaultExecutablePath \"$HOST_EXE\", but this build produced \"$EXE\"" >&2
fi
echo "build.sh: OK ./$EXE"
