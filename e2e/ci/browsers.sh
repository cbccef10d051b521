#!/usr/bin/env bash
# Remote browsers as containers: build the Chromium image and the reference image, bring up the
# `reference` and `browsers` profiles and run `second-connection` with its tabs in the two
# Chromium containers, reached only through the target file's `browsers` (CDP on 9301, 9302).
# The plain-process variant of the same check is tests/e2e_remote_browsers.rs. Needs root.
#
#   bash e2e/ci/browsers.sh [HELIX_E2E_BINARY]
#
# The engine: as e2e/ci/containers.sh chooses it (the one already answering, else one of
# e2e/reference/engine.sh's inside namespace helix-e2e-docker, which the driver joins and which
# is stopped again at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${1:-$CARGO_TARGET_DIR/debug/helix-e2e}"
artifacts="${HELIX_E2E_CI_ARTIFACTS:-artifacts/ci-browsers}"

compose() { bash e2e/ci/compose.sh --profile reference --profile browsers "$@"; }

started_engine=0
stack_up=0
cleanup() {
  if [ "$stack_up" = 1 ]; then compose down --timeout 5 >/dev/null 2>&1 || true; fi
  if [ -n "${HELIX_E2E_SOCKET_DIR:-}" ]; then rm -rf "$HELIX_E2E_SOCKET_DIR"; fi
  if [ "$started_engine" = 1 ]; then bash e2e/reference/engine.sh stop || true; fi
}
trap cleanup EXIT

if bash e2e/reference/engine.sh status >/dev/null 2>&1; then
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
elif timeout 5 docker info >/dev/null 2>&1; then
  where=()
else
  started_engine=1
  bash e2e/reference/engine.sh start
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
fi

bash e2e/reference/build-images.sh "$bin"
bash e2e/browsers/build-image.sh "$bin"

export HELIX_E2E_SOCKET_DIR=/tmp/helix-e2e-compose
rm -rf "$HELIX_E2E_SOCKET_DIR" && mkdir -p "$HELIX_E2E_SOCKET_DIR"
stack_up=1
compose up -d --wait --wait-timeout 120
HELIX_E2E_EMAIL=e2e@helix.local HELIX_E2E_PASSWORD=e2e-throwaway-password MOONLIGHT_CREDENTIALS=helix \
  "$bin" run second-connection --time-scale 0.2 "${where[@]}" \
  --target e2e/targets/compose-browsers.toml --artifacts "$artifacts" --json > "$artifacts.summary.json"
# Each tab ran in the container its index falls to.
grep -q '"browser": "http://127.0.0.1:9301"' "$artifacts.summary.json"
grep -q '"browser": "http://127.0.0.1:9302"' "$artifacts.summary.json"
echo "browsers: second-connection passed over the two Chromium containers"
