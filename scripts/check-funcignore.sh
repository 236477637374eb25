#!/usr/bin/env bash
# usage: scripts/check-funcignore.sh [--worktree | --dir DIR]
#
# Lists the files `func azure functionapp publish` would upload and fails unless that set is
# exactly: host.json, the handler binary (handler, and handler.exe if present), and every file
# of each function folder (a top-level folder holding function.json).
#
#   default     a clean copy of the tree (git-tracked files + untracked files that .gitignore
#               does not exclude) plus fake `handler` and `handler.exe` binaries and a decoy of
#               the Wine-only test shim (bcryptprimitives.dll, scripts/test-windows.sh) in the
#               app root. Checked twice: with Core Tools' own matcher (a re-implementation of its
#               GitIgnoreParser.cs + GetLocalFiles) and with real gitignore semantics
#               (git ls-files --exclude-from=.funcignore).
#   --worktree  the working tree as it is now (target/, node_modules/, built binaries...), with
#               Core Tools' matcher only: exactly what a publish from here would zip.
#   --dir DIR   an app folder elsewhere, e.g. the Windows package scripts/publish.sh stages,
#               with Core Tools' matcher and DIR's own .funcignore.
# Needs: git, node.
set -euo pipefail

MODE=copy
USAGE="usage: scripts/check-funcignore.sh [--worktree | --dir DIR]"
case "${1:-}" in
  "") [[ $# -eq 0 ]] || { echo "$USAGE" >&2; exit 2; } ;;
  --worktree) [[ $# -eq 1 ]] || { echo "$USAGE" >&2; exit 2; }; MODE=worktree ;;
  --dir) [[ $# -eq 2 && -d "$2" ]] || { echo "$USAGE (DIR must be a folder)" >&2; exit 2; }
         MODE=dir; DIR="$(cd "$2" && pwd)" ;;
  *) echo "$USAGE" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -f .funcignore ]] || { echo "check-funcignore: no .funcignore in $ROOT" >&2; exit 1; }
[[ $MODE != dir || -f "$DIR/.funcignore" ]] || { echo "check-funcignore: no .funcignore in $DIR" >&2; exit 1; }
for tool in git node; do command -v "$tool" >/dev/null || { echo "check-funcignore: '$tool' not found" >&2; exit 1; }; done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/funcignore.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# Core Tools' behaviour (azure-functions-core-tools src/Cli/func/Common/FileSystemHelpers.cs
# GetLocalFiles + GitIgnoreParser.cs): walk every file, skipping folders named .git / .vscode and
# files named .funcignore / .gitignore / local.settings.json / project.lock.json anywhere
# (case-insensitive); keep a relative path P if negative.test(P) || !positive.test(P).
# Also prints the expected set (mode "expected").
CORE_TOOLS_JS='
const fs = require("fs"), path = require("path");
const [mode, root] = process.argv.slice(1);
const skipDirs = [".git", ".vscode"];
const skipFiles = [".funcignore", ".gitignore", "local.settings.json", "project.lock.json"];
function* walk(dir, rel) {
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  for (const e of entries) {
    const full = path.join(dir, e.name), r = rel ? rel + "/" + e.name : e.name;
    const isDir = e.isDirectory() || (e.isSymbolicLink() && fs.statSync(full, { throwIfNoEntry: false })?.isDirectory());
    if (isDir) { if (!skipDirs.includes(e.name.toLowerCase())) yield* walk(full, r); }
    else if (!skipFiles.includes(e.name.toLowerCase())) yield r;
  }
}
const files = [...walk(root, "")];
if (mode === "expected") {
  const fnDirs = fs.readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(root, e.name, "function.json")))
    .map((e) => e.name + "/");
  const keep = (f) => ["host.json", "handler", "handler.exe"].includes(f) || fnDirs.some((d) => f.startsWith(d));
  for (const f of files.filter(keep).sort()) console.log(f);
  process.exit(0);
}
const esc = (p) => p.replace(/[\-\[\]\/\{\}\(\)\+\?\.\\\^\$\|]/g, "\\$&").replaceAll("**", "(.+)").replaceAll("*", "([^\\/]+)"); // C# string.Replace = replaceAll
function compile(list) {
  return list.length ? new RegExp("^((" + list.sort().map(esc).join(")|(") + "))\\b") : /$^/;
}
const pos = [], neg = [];
for (let line of fs.readFileSync(path.join(root, ".funcignore"), "utf8").split("\n")) {
  line = line.trim();
  if (!line || line.startsWith("#")) continue;
  const isNeg = line.startsWith("!");
  if (isNeg) line = line.slice(1);
  if (line.startsWith("/")) line = line.slice(1);
  (isNeg ? neg : pos).push(line);
}
const negative = compile(neg), positive = compile(pos);
for (const f of files.filter((f) => negative.test(f) || !positive.test(f)).sort()) console.log(f);
'

compare() { # compare LABEL EXPECTED_FILE ACTUAL_FILE
  if diff -q "$2" "$3" >/dev/null; then
    echo "    OK: $1 uploads exactly the expected $(wc -l <"$3") files"
    return 0
  fi
  echo "    FAIL: $1 differs from the expected set"
  comm -13 "$2" "$3" | sed 's/^/      would upload, should not: /'
  comm -23 "$2" "$3" | sed 's/^/      missing from upload:      /'
  return 1
}

if [[ $MODE == copy ]]; then
  echo "==> making a clean copy of the tree in $TMP/app (tracked + non-ignored files, fake handler)"
  mkdir "$TMP/app"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$TMP/app"
  cp .funcignore "$TMP/app/.funcignore"
  printf '\177ELF fake handler\n' >"$TMP/app/handler"
  chmod +x "$TMP/app/handler"
  printf 'MZ fake handler.exe\n' >"$TMP/app/handler.exe"
  # The Wine-only test shim must never ship, wherever a build might leave it.
  printf 'MZ fake test shim\n' >"$TMP/app/bcryptprimitives.dll"
  APP="$TMP/app"
elif [[ $MODE == dir ]]; then
  APP="$DIR"
else
  APP="$ROOT"
fi
[[ -f "$APP/host.json" ]] || echo "    warning: no host.json in the app root yet" >&2

LC_ALL=C
export LC_ALL
node -e "$CORE_TOOLS_JS" expected "$APP" | sort >"$TMP/expected"
node -e "$CORE_TOOLS_JS" match "$APP" | sort >"$TMP/coretools"

echo "==> files Core Tools would upload ($MODE):"
sed 's/^/      /' "$TMP/coretools"
FAIL=0
compare "Core Tools matcher" "$TMP/expected" "$TMP/coretools" || FAIL=1

if [[ $MODE == copy ]]; then
  # Real gitignore semantics, as a second opinion (and in case Core Tools ever switches to it).
  git -C "$APP" init -q
  git -C "$APP" ls-files --others --exclude-from="$APP/.funcignore" |
    awk -F/ '{ n = tolower($NF); for (i = 1; i < NF; i++) if (tolower($i) == ".vscode") next }
             n != ".funcignore" && n != ".gitignore" && n != "local.settings.json" && n != "project.lock.json"' |
    sort >"$TMP/gitsem"
  compare "gitignore semantics" "$TMP/expected" "$TMP/gitsem" || FAIL=1
fi

if [[ $FAIL -ne 0 ]]; then
  echo "check-funcignore: .funcignore does not give the expected upload set (see above)" >&2
  exit 1
fi
echo "check-funcignore: OK"
