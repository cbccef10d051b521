#!/usr/bin/env bash
# The test suite from a machine that has only the Rust toolchain: install what the tests need
# (Chromium, iproute2, Docker's CLI and compose, xmllint, script; e2e/ci/deps.sh), then
# `cargo test`. Browser tests put Chromium and the reference stack into a private network
# namespace themselves, which needs root: run as root, or as a user with sudo (the tests then
# need root all the same: `sudo env "PATH=$PATH" bash e2e/test.sh`).
#
#   bash e2e/test.sh [cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash e2e/ci/deps.sh
exec cargo test --no-fail-fast "$@"
