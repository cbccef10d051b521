#!/usr/bin/env bash
# What the tests need besides the Rust toolchain, installed when missing, on Debian (this
# project's machines) and Ubuntu (GitHub-hosted runners). Runs as root, or as a user with sudo.
#
#   bash e2e/ci/deps.sh
#
# Chromium: Debian's package. On GitHub's Ubuntu images `chromium` is only a snap stub, and
# Google Chrome is preinstalled: it is linked where the driver looks (/usr/bin/chromium), since
# both speak the same DevTools protocol and the driver uses nothing that differs between them.
# Docker: a docker CLI and compose, v2 (`docker compose`) or v1 (`docker-compose`); dockerd only
# where no engine runs already (hosted runners have one).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have() { command -v "$1" >/dev/null 2>&1; }

missing=()
if [ ! -x /usr/bin/chromium ]; then
  if have google-chrome; then
    echo "deps: linking /usr/bin/chromium to $(command -v google-chrome)"
    as_root ln -sf "$(command -v google-chrome)" /usr/bin/chromium
  else
    missing+=(chromium)
  fi
fi
have ip || missing+=(iproute2)
have nsenter || missing+=(util-linux)
have script || missing+=(bsdutils)        # tests/terminal.rs: a real pseudo-terminal
have xmllint || missing+=(libxml2-utils)  # tests check junit.xml against its schemas
have sudo || missing+=(sudo)              # the workflows' steps, run as a hosted runner runs them
if ! have docker || { ! have dockerd && ! timeout 5 docker info >/dev/null 2>&1; }; then
  missing+=(docker.io)
fi
if ! docker compose version >/dev/null 2>&1 && ! have docker-compose; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
