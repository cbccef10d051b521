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

# A watch of the same stack (the target file has no `[logs]`): the containers' output comes
# straight from the engine. Restarting the API's container makes it log its start, which the
# watch must have read (its log-lines counter) with no file written for it.
in_ns=()
if [ "${#where[@]}" -gt 0 ]; then in_ns=(ip netns exec "${where[1]}"); fi
metrics() { "${in_ns[@]}" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9469 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null || true; }
watch_err="$(mktemp -t helix-e2e-ci-watch.XXXXXX)"
watch_pid=
# Whatever fails below, the watch does not outlive the script.
trap 'if [ -n "$watch_pid" ]; then kill -TERM "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; fi; rm -f "$watch_err"; ci_cleanup' EXIT
HELIX_E2E_EMAIL=e2e@helix.local HELIX_E2E_PASSWORD=e2e-throwaway-password MOONLIGHT_CREDENTIALS=helix \
  "${in_ns[@]}" "$bin" watch --target e2e/targets/compose-reference.toml --metrics 127.0.0.1:9469 --json 2>"$watch_err" &
watch_pid=$!
for _ in $(seq 100); do metrics | grep -q '^helix_e2e_log_lines_total' && break; sleep 0.2; done
compose restart --timeout 5 api >/dev/null || echo "containers.sh: compose restart api failed" >&2
api_lines=0
for _ in $(seq 150); do
  api_lines="$(metrics | sed -n 's/^helix_e2e_log_lines_total{service="api"} //p')"
  [ "${api_lines:-0}" != 0 ] && break
  sleep 0.2
done
kill -TERM "$watch_pid"; wait "$watch_pid" || true
watch_pid=
said="$(cat "$watch_err")"; rm -f "$watch_err"
printf '%s\n' "$said" >&2
following="$(grep -o "following the logs of .* through the Docker engine" <<<"$said" || true)"
if grep -q "no logs for" <<<"$said" || ! { grep -q wolf <<<"$following" && grep -q moonlight-web <<<"$following" && grep -q api <<<"$following"; }; then
  echo "containers.sh: the watch did not follow every container's log through the engine" >&2
  exit 1
fi
if [ "${api_lines:-0}" = 0 ]; then
  echo "containers.sh: the watch read no line of the api container's log after its restart" >&2
  exit 1
fi
echo "containers.sh: the watch read ${api_lines} api log line(s) from the engine after the restart"
