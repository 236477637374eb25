#!/usr/bin/env bash
# usage: scripts/publish.sh <function-app-name> [extra `func azure functionapp publish` options]
#
# Builds the static Linux handler (scripts/build.sh), checks what .funcignore lets through
# (scripts/check-funcignore.sh --worktree), then runs
#   func azure functionapp publish <function-app-name> [options]
# Needs Azure Functions Core Tools (`func`) and the Azure CLI (`az`), logged in (`az login`).
set -euo pipefail

if [[ $# -lt 1 || -z "${1:-}" || "$1" == -* ]]; then
  echo "usage: scripts/publish.sh <function-app-name> [extra func publish options, e.g. --show-keys]" >&2
  exit 2
fi
APP="$1"; shift

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { echo "==> $*"; }
die() { echo "publish.sh: error: $*" >&2; exit 1; }

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

step "building (scripts/build.sh)"
"$ROOT/scripts/build.sh"

step "checking the upload set (scripts/check-funcignore.sh --worktree)"
"$ROOT/scripts/check-funcignore.sh" --worktree

# Core Tools compares the local worker runtime with the app's; without local.settings.json it
# only knows it from the environment ("local project is None" otherwise).
export FUNCTIONS_WORKER_RUNTIME="${FUNCTIONS_WORKER_RUNTIME:-custom}"
step "func azure functionapp publish $APP $* (FUNCTIONS_WORKER_RUNTIME=$FUNCTIONS_WORKER_RUNTIME)"
func azure functionapp publish "$APP" "$@"
