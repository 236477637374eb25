#!/usr/bin/env bash
# usage: scripts/publish.sh <function-app-name> [--linux | --windows] [--no-build] [--stage-only DIR]
#                           [extra `func azure functionapp publish` options]
#
# Builds the handler for the app's OS and publishes it with
#   func azure functionapp publish <function-app-name> [options]
#   --linux      (the default) static Linux ./handler (scripts/build.sh), published from the
#                repository root as it is: host.json names `handler`.
#   --windows    ./handler.exe (scripts/build.sh --windows), published from a staged copy of
#                the app in a temporary folder whose host.json names `handler.exe`; the
#                repository's host.json is never changed.
#   neither      with `az` logged in, the app's OS is read from Azure (its `kind` says "linux"
#                or not); Linux when that does not answer.
#   --no-build   use the ./handler or ./handler.exe already built.
#   --stage-only DIR   write the package's files to DIR (must not exist yet) and check them;
#                publishes nothing and needs neither `func` nor `az`.
# Both paths check what .funcignore lets through (scripts/check-funcignore.sh).
# Needs Azure Functions Core Tools (`func`) and the Azure CLI (`az`), logged in (`az login`).
set -euo pipefail

usage() {
  echo "usage: scripts/publish.sh <function-app-name> [--linux | --windows] [--no-build] [--stage-only DIR] [extra func publish options, e.g. --show-keys]" >&2
  exit 2
}
if [[ $# -lt 1 || -z "${1:-}" || "$1" == -* ]]; then usage; fi
APP="$1"; shift
# Azure app names: letters, digits, hyphens (also keeps the az query below well-formed).
[[ "$APP" =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]] || { echo "publish.sh: error: '$APP' is not a function app name" >&2; exit 2; }
OS=""
BUILD=1
STAGE_ONLY=""
FUNC_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --linux) OS=linux; shift ;;
    --windows) OS=windows; shift ;;
    --no-build) BUILD=0; shift ;;
    --stage-only) [[ $# -ge 2 && -n "$2" ]] || usage; STAGE_ONLY="$2"; shift 2 ;;
    *) FUNC_ARGS+=("$1"); shift ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
die() { echo "publish.sh: error: $*" >&2; exit 1; }

# Before any build: a stage must be a new folder, never one holding something else.
[[ -z "$STAGE_ONLY" || ! -e "$STAGE_ONLY" ]] || die "--stage-only $STAGE_ONLY already exists"

if [[ -z "$STAGE_ONLY" ]]; then
  step "checking Azure Functions Core Tools"
  if ! command -v func >/dev/null; then
    die "'func' (Azure Functions Core Tools v4) not found. Install it, e.g.:
    npm install -g azure-functions-core-tools@4     (downloads its binaries from GitHub)
  or Microsoft's apt package 'azure-functions-core-tools-4' (packages.microsoft.com), or see
    https://learn.microsoft.com/azure/azure-functions/functions-run-local"
  fi
  echo "    func $(func --version 2>/dev/null || echo '(version unknown)')"

  step "checking the Azure login (az account show)"
  command -v az >/dev/null || die "'az' (Azure CLI) not found; func uses its login to publish. Install it:
    https://learn.microsoft.com/cli/azure/install-azure-cli   then run: az login"
  ACCOUNT="$(az account show --query '[name, user.name]' -o tsv 2>/dev/null | paste -sd' ' -)" \
    || die "not logged in to Azure: run 'az login' (and 'az account set --subscription <id>' if needed)"
  echo "    $ACCOUNT"

  if [[ -z "$OS" ]]; then
    step "the app's OS (az functionapp list: kind of $APP)"
    # Linux apps have "linux" in their kind ("functionapp,linux"); Windows apps do not.
    KIND="$(az functionapp list --query "[?name=='$APP'].kind | [0]" -o tsv 2>/dev/null || true)"
    case "$KIND" in
      *linux*) OS=linux ;;
      functionapp*) OS=windows ;;
      *) OS=linux; echo "    no answer for $APP; assuming Linux (pass --windows for a Windows app)" ;;
    esac
    echo "    ${KIND:-?} -> $OS"
  fi
fi
OS="${OS:-linux}"
if [[ $OS == windows ]]; then EXE=handler.exe; BUILD_ARGS=(--windows); else EXE=handler; BUILD_ARGS=(); fi

if [[ $BUILD -eq 1 ]]; then
  step "building (scripts/build.sh ${BUILD_ARGS[*]})"
  "$ROOT/scripts/build.sh" "${BUILD_ARGS[@]}"
else
  step "using the built ./$EXE (--no-build)"
fi
[[ -f "$ROOT/$EXE" ]] || die "./$EXE does not exist; build it with scripts/build.sh ${BUILD_ARGS[*]}"

# Core Tools compares the local worker runtime with the app's; without local.settings.json it
# only knows it from the environment ("local project is None" otherwise).
export FUNCTIONS_WORKER_RUNTIME="${FUNCTIONS_WORKER_RUNTIME:-custom}"

if [[ $OS == linux && -z "$STAGE_ONLY" ]]; then
  step "checking the upload set (scripts/check-funcignore.sh --worktree)"
  "$ROOT/scripts/check-funcignore.sh" --worktree
  step "func azure functionapp publish $APP ${FUNC_ARGS[*]} (FUNCTIONS_WORKER_RUNTIME=$FUNCTIONS_WORKER_RUNTIME)"
  func azure functionapp publish "$APP" "${FUNC_ARGS[@]}"
  exit 0
fi

if [[ -n "$STAGE_ONLY" ]]; then
  STAGE="$STAGE_ONLY"
  mkdir -p "$STAGE"
else
  STAGE="$(mktemp -d "${TMPDIR:-/tmp}/publish-$APP.XXXXXX")"
  trap 'rm -rf "$STAGE"' EXIT
fi

step "staging the $OS package in $STAGE"
# Only what the app is made of: host.json, the binary for this OS, the function folders (and
# .funcignore, so a publish from the stage filters the same way, and local.settings.json, which
# Core Tools reads for the worker runtime and --publish-local-settings but never uploads).
# Nothing else is copied, so sources, target/, the Wine test shim or the other OS's binary
# cannot end up in the zip.
cp "$ROOT/.funcignore" "$STAGE/.funcignore"
if [[ -f "$ROOT/local.settings.json" ]]; then cp "$ROOT/local.settings.json" "$STAGE/"; fi
cp "$ROOT/$EXE" "$STAGE/$EXE"
for function_json in "$ROOT"/*/function.json; do
  [[ -f "$function_json" ]] || continue
  cp -R "$(dirname "$function_json")" "$STAGE/"
done
# host.json naming this OS's binary; every other setting as in the repository.
python3 - "$ROOT/host.json" "$STAGE/host.json" "$EXE" <<'PY'
import json, sys
source, target, exe = sys.argv[1:]
with open(source, encoding="utf-8") as f:
    host = json.load(f)
description = host.setdefault("customHandler", {}).setdefault("description", {})
description["defaultExecutablePath"] = exe
with open(target, "w", encoding="utf-8") as f:
    json.dump(host, f, indent=2)
    f.write("\n")
PY
echo "    host.json: customHandler.description.defaultExecutablePath = \"$EXE\""

step "checking the upload set (scripts/check-funcignore.sh --dir $STAGE)"
"$ROOT/scripts/check-funcignore.sh" --dir "$STAGE"

if [[ -n "$STAGE_ONLY" ]]; then
  echo "publish.sh: staged the $OS package in $STAGE (nothing published: --stage-only)"
  exit 0
fi
step "func azure functionapp publish $APP ${FUNC_ARGS[*]} from $STAGE (FUNCTIONS_WORKER_RUNTIME=$FUNCTIONS_WORKER_RUNTIME)"
(cd "$STAGE" && func azure functionapp publish "$APP" "${FUNC_ARGS[@]}")
