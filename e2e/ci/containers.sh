#!/usr/bin/env bash
# The reference stack as containers: build its image, check service control through the engine
# (tests/docker.rs), bring up the `reference` profile and run `restart-chaos` against it,
# restarting the containers through the engine's API. Needs root (the Docker socket, and the
# driver's namespaces).
#
#   bash e2e/ci/containers.sh [HELIX_E2E_BINARY]
#
# The engine: the one already answering on the Docker socket when there is one (a GitHub-hosted
# runner's): its containers share this host's network, so the driver runs here too. Else one of our own, started by e2e/reference/engine.sh inside network
# namespace helix-e2e-docker (this project's machines allow loopback only), which the driver
# joins (`--netns helix-e2e-docker`) and which is stopped again at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${1:-$CARGO_TARGET_DIR/debug/helix-e2e}"
artifacts="${HELIX_E2E_CI_ARTIFACTS:-artifacts/ci-docker}"

compose() { bash e2e/ci/compose.sh --profile reference "$@"; }

started_engine=0
stack_up=0
cleanup() {
  if [ "$stack_up" = 1 ]; then compose down --timeout 5 >/dev/null 2>&1 || true; fi
  # The stand-ins' stores there hold login tokens: nothing of them stays in /tmp.
  if [ -n "${HELIX_E2E_SOCKET_DIR:-}" ]; then rm -rf "$HELIX_E2E_SOCKET_DIR"; fi
  if [ "$started_engine" = 1 ]; then bash e2e/reference/engine.sh stop || true; fi
}
trap cleanup EXIT

if bash e2e/reference/engine.sh status >/dev/null 2>&1; then
  echo "containers: the engine of e2e/reference/engine.sh already runs; leaving it running"
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
elif timeout 5 docker info >/dev/null 2>&1; then
  echo "containers: using the Docker engine already running here (its containers share this host's network)"
  where=()
else
  started_engine=1
  bash e2e/reference/engine.sh start
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
fi

bash e2e/reference/build-images.sh "$bin"
cargo test --test docker -- --ignored

# The socket directory also holds the stand-ins' stores: start from an empty one.
export HELIX_E2E_SOCKET_DIR=/tmp/helix-e2e-compose
rm -rf "$HELIX_E2E_SOCKET_DIR" && mkdir -p "$HELIX_E2E_SOCKET_DIR"
stack_up=1
compose up -d --wait --wait-timeout 120
HELIX_E2E_EMAIL=e2e@helix.local HELIX_E2E_PASSWORD=e2e-throwaway-password MOONLIGHT_CREDENTIALS=helix \
  "$bin" run restart-chaos --time-scale 0.2 "${where[@]}" \
  --target e2e/targets/compose-reference.toml --artifacts "$artifacts"
