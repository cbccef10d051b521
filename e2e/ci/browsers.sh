#!/usr/bin/env bash
# Remote browsers as containers: build the Chromium image and the reference image, bring up the
# `reference` and `browsers` profiles and run `second-connection` with its tabs in the two
# Chromium containers, reached only through the target file's `browsers` (CDP on 9301, 9302).
# The plain-process variant of the same check is tests/e2e_remote_browsers.rs. Needs root.
#
#   bash e2e/ci/browsers.sh [HELIX_E2E_BINARY]
#
# The engine and the profiles' lifecycle: e2e/ci/with-engine.sh, as for e2e/ci/containers.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${1:-$CARGO_TARGET_DIR/debug/helix-e2e}"
artifacts="${HELIX_E2E_CI_ARTIFACTS:-artifacts/ci-browsers}"

profiles=(--profile reference --profile browsers)
# shellcheck source=e2e/ci/with-engine.sh
source e2e/ci/with-engine.sh

bash e2e/reference/build-images.sh "$bin"
bash e2e/browsers/build-image.sh "$bin"

compose_up
HELIX_E2E_EMAIL=e2e@helix.local HELIX_E2E_PASSWORD=e2e-throwaway-password MOONLIGHT_CREDENTIALS=helix \
  "$bin" run second-connection --time-scale 0.2 "${where[@]}" \
  --target e2e/targets/compose-browsers.toml --artifacts "$artifacts" --json > "$artifacts.summary.json"
# Each tab ran in the container its index falls to.
grep -q '"browser": "http://127.0.0.1:9301"' "$artifacts.summary.json"
grep -q '"browser": "http://127.0.0.1:9302"' "$artifacts.summary.json"
echo "browsers: second-connection passed over the two Chromium containers"
