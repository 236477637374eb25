#!/usr/bin/env bash
# usage: scripts/test-publish.sh
#
# Proves what scripts/publish.sh would upload, without Azure: on a copy of the working tree
# (tracked + non-ignored files) with fake ./handler and ./handler.exe binaries and decoys of the
# Wine-only test shim (bcryptprimitives.dll) in the app root and under target/, it runs
# `publish.sh <app> --windows --no-build --stage-only DIR` and checks DIR holds exactly
# host.json naming handler.exe (every other setting unchanged), handler.exe and the function
# folders (plus .funcignore and local.settings.json, which Core Tools reads but never uploads),
# and that Core Tools would upload all but those two; that the copy's own host.json is untouched; that without --windows the package is
# the Linux one (host.json as in the repository, ./handler); and that bad calls are refused.
# Needs: git, python3, node (check-funcignore.sh).
set -euo pipefail
[[ $# -eq 0 ]] || { echo "usage: scripts/test-publish.sh" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { echo "==> $*"; }
die() { echo "test-publish.sh: FAIL: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/test-publish.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
APP="$WORK/app"

step "copy of the working tree with fake binaries and shim decoys"
mkdir "$APP"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$APP"
printf 'MZ fake handler.exe %s\n' "$RANDOM" >"$APP/handler.exe"
printf '\177ELF fake handler %s\n' "$RANDOM" >"$APP/handler"
chmod +x "$APP/handler" "$APP/handler.exe"
mkdir -p "$APP/target/wine-e2e/bin"
for decoy in "$APP/bcryptprimitives.dll" "$APP/target/wine-e2e/bin/bcryptprimitives.dll"; do
  printf 'MZ fake test shim\n' >"$decoy"
done
cp "$APP/host.json" "$WORK/host.json.before"

# Every file of every function folder, relative to the app root.
FUNCTION_FILES="$(cd "$APP" && for f in */function.json; do find "$(dirname "$f")" -type f; done | sort)"
[[ -n "$FUNCTION_FILES" ]] || die "no function folder in the app"

package_files() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

# host_json_check STAGED_HOST_JSON EXE: names EXE, everything else equal to the repository's.
host_json_check() {
  python3 - "$WORK/host.json.before" "$1" "$2" <<'PY'
import json, sys
before, staged, exe = sys.argv[1:]
original = json.load(open(before, encoding="utf-8"))
package = json.load(open(staged, encoding="utf-8"))
named = package["customHandler"]["description"]["defaultExecutablePath"]
if named != exe:
    sys.exit(f"host.json names {named!r}, not {exe!r}")
package["customHandler"]["description"]["defaultExecutablePath"] = original["customHandler"]["description"]["defaultExecutablePath"]
if package != original:
    sys.exit(f"host.json differs beyond defaultExecutablePath:\n{json.dumps(package, indent=2)}")
PY
}

step "publish.sh demo-app --windows --no-build --stage-only"
bash "$APP/scripts/publish.sh" demo-app --windows --no-build --stage-only "$WORK/win" >"$WORK/win.log" 2>&1 \
  || { cat "$WORK/win.log" >&2; die "staging the Windows package failed"; }
want="$(printf '%s\n' .funcignore handler.exe host.json local.settings.json $FUNCTION_FILES | LC_ALL=C sort)"
got="$(package_files "$WORK/win")"
[[ "$got" == "$want" ]] || die "Windows package holds:
$got
want:
$want"
cmp -s "$APP/handler.exe" "$WORK/win/handler.exe" || die "the staged handler.exe is not ./handler.exe"
host_json_check "$WORK/win/host.json" handler.exe || die "staged host.json (Windows)"
cmp -s "$WORK/host.json.before" "$APP/host.json" || die "publish.sh changed the app's own host.json"
# Uploaded: host.json, handler.exe and the function files (not .funcignore, local.settings.json).
uploads=$((2 + $(wc -w <<<"$FUNCTION_FILES")))
grep -q "OK: Core Tools matcher uploads exactly the expected $uploads files" "$WORK/win.log" \
  || { cat "$WORK/win.log" >&2; die "check-funcignore.sh --dir did not pass on the Windows package"; }
echo "    OK: host.json (names handler.exe), handler.exe, $(wc -w <<<"$FUNCTION_FILES") function file(s); no shim, no Linux binary, no sources"

step "publish.sh demo-app --no-build --stage-only (the default: Linux)"
bash "$APP/scripts/publish.sh" demo-app --no-build --stage-only "$WORK/linux" >"$WORK/linux.log" 2>&1 \
  || { cat "$WORK/linux.log" >&2; die "staging the Linux package failed"; }
want="$(printf '%s\n' .funcignore handler host.json local.settings.json $FUNCTION_FILES | LC_ALL=C sort)"
got="$(package_files "$WORK/linux")"
[[ "$got" == "$want" ]] || die "Linux package holds:
$got
want:
$want"
host_json_check "$WORK/linux/host.json" handler || die "staged host.json (Linux)"
echo "    OK: host.json (names handler, as in the repository), handler"

step "refusals"
refused() { # refused WANT_MESSAGE ARGS...: publish.sh must fail, saying WANT_MESSAGE
  local want="$1"; shift
  if bash "$APP/scripts/publish.sh" "$@" >"$WORK/refused.log" 2>&1; then die "publish.sh $* succeeded"; fi
  grep -qF -- "$want" "$WORK/refused.log" || { cat "$WORK/refused.log" >&2; die "publish.sh $*: no '$want'"; }
  echo "    OK: publish.sh $* -> $want"
}
refused "already exists" demo-app --windows --no-build --stage-only "$WORK/win"
rm "$APP/handler.exe"
refused "./handler.exe does not exist" demo-app --windows --no-build --stage-only "$WORK/none"
refused "is not a function app name" "demo'app" --windows --no-build --stage-only "$WORK/none"
[[ ! -e "$WORK/none" ]] || die "a refused call left $WORK/none behind"

echo "test-publish.sh: OK"
