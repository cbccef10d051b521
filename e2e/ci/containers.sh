#!/usr/bin/env bash
# The reference stack as containers: build its image, check service control through the engine
# (tests/docker.rs), bring up the `reference` profile and run `restart-chaos` against it,
# restarting the containers through the engine's API. Needs root (the Docker socket, and the
# driver's namespaces).
#
#   bash e2e/ci/containers.sh [HELIX_E2E_BINARY]
#
# The engine and the profile's lifecycle: e2e/ci/with-engine.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${1:-$CARGO_TARGET_DIR/debug/helix-e2e}"
artifacts="${HELIX_E2E_CI_ARTIFACTS:-artifacts/ci-docker}"

profiles=(--profile reference)
# shellcheck source=e2e/ci/with-engine.sh
source e2e/ci/with-engine.sh

bash e2e/reference/build-images.sh "$bin"
cargo test --test docker -- --ignored

compose_up
HELIX_E2E_EMAIL=e2e@helix.local HELIX_E2E_PASSWORD=e2e-throwaway-password MOONLIGHT_CREDENTIALS=helix \
  "$bin" run restart-chaos --time-scale 0.2 "${where[@]}" \
  --target e2e/targets/compose-reference.toml --artifacts "$artifacts"
