# Sourced by the other scripts (not run): `cargo_exe NAME [cargo build args...]` builds with
# cargo and prints the path of executable NAME as cargo reports it (the `executable` field of
# `--message-format=json`), so scripts run the binary cargo just built wherever it put it
# (CARGO_TARGET_DIR, --target, workspaces, examples), never a stale ./target.
# Diagnostics go to stderr as usual; fails if cargo fails or builds no such executable.
cargo_exe() {
  local name=$1
  shift
  cargo build --message-format=json-render-diagnostics "$@" | python3 -c '
import json, sys
name, found = sys.argv[1], None
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == name \
            and message.get("executable"):
        found = message["executable"]
if not found:
    sys.exit(f"cargo built no executable named {name}")
print(found)
' "$name"
}

# `cargo_target_dir [--manifest-path PATH]`: cargo's target directory for this workspace.
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps "$@" | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# `ensure_rust_target TRIPLE`: adds the Rust target with rustup unless the sysroot has it.
ensure_rust_target() {
  if rustc --print sysroot >/dev/null 2>&1 && [[ -d "$(rustc --print sysroot)/lib/rustlib/$1/lib" ]]; then
    echo "    installed"
  elif command -v rustup >/dev/null; then
    rustup target add "$1"
  else
    echo "Rust target $1 is missing and rustup is not available to add it" >&2
    return 1
  fi
}
