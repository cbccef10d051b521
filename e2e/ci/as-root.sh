#!/usr/bin/env bash
# Runs a command as root with the calling user's Rust toolchain. The browser tests and the
# driver make network namespaces and read root-owned sockets, so on a runner whose user is not
# root they go through sudo; sudo resets PATH to its secure_path and HOME to root's, which hides
# a toolchain installed for the user (~/.cargo/bin, ~/.rustup). So the paths are passed by name.
#
#   bash e2e/ci/as-root.sh COMMAND [ARGS...]
set -euo pipefail
if [ "$(id -u)" = 0 ]; then
  exec "$@"
fi
exec sudo env \
  "PATH=$PATH" \
  "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" \
  "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" \
  "CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}" \
  "CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-auto}" \
  "$@"
