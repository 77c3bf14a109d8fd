#!/usr/bin/env bash
# Installs what the tests need beyond node_modules, from Debian's packages, only when it is missing:
#   nats-server  every integration and e2e test starts its own on a random port
#   chromium     test/e2e/inspector.test.ts drives Debian's /usr/bin/chromium (never a downloaded browser)
# `npm test` runs it first (its `pretest` script, with the typecheck and lint). As root it runs apt-get itself; otherwise through
# sudo when sudo works without a password; else it stops and prints the one command to run.
set -euo pipefail

missing=()
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then missing+=(nats-server); fi
if [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi

versions() {
  local nats_bin
  nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  echo "provision: node $(node --version), npm $(npm --version), $("$nats_bin" --version), $(/usr/bin/chromium --version 2>/dev/null)"
}

if [ ${#missing[@]} -eq 0 ]; then
  versions
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "provision: the tests need ${missing[*]} (Debian packages); run as root:" >&2
  echo "  $cmd" >&2
  exit 1
fi

echo "provision: installing ${missing[*]} from apt"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
versions
