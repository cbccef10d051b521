# Sourced by the CI scripts that bring up compose profiles (e2e/ci/containers.sh, browsers.sh):
# one place that picks the Docker engine, brings the profiles up and undoes all of it on exit.
# The caller sets `profiles` (e.g. `--profile reference`) before sourcing.
#
# The engine: the one already answering on the Docker socket when there is one (a GitHub-hosted
# runner's): its containers share this host's network, so the driver runs here too. Else one of
# our own, started by e2e/reference/engine.sh inside network namespace helix-e2e-docker (this
# project's machines allow loopback only), which the driver joins (`where`: `--netns
# helix-e2e-docker`) and which is stopped again at the end.

compose() { bash e2e/ci/compose.sh "${profiles[@]}" "$@"; }

started_engine=0
stack_up=0
ci_cleanup() {
  if [ "$stack_up" = 1 ]; then compose down --timeout 5 >/dev/null 2>&1 || true; fi
  # The stand-ins' stores there hold login tokens: nothing of them stays in /tmp.
  if [ -n "${HELIX_E2E_SOCKET_DIR:-}" ]; then rm -rf "$HELIX_E2E_SOCKET_DIR"; fi
  if [ "$started_engine" = 1 ]; then bash e2e/reference/engine.sh stop || true; fi
}
trap ci_cleanup EXIT

if bash e2e/reference/engine.sh status >/dev/null 2>&1; then
  echo "ci: the engine of e2e/reference/engine.sh already runs; leaving it running"
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
elif timeout 5 docker info >/dev/null 2>&1; then
  echo "ci: using the Docker engine already running here (its containers share this host's network)"
  where=()
else
  started_engine=1
  bash e2e/reference/engine.sh start
  where=(--netns "${HELIX_E2E_NETNS:-helix-e2e-docker}")
fi

# Bring the profiles up from an empty socket directory (it also holds the stand-ins' stores).
compose_up() {
  export HELIX_E2E_SOCKET_DIR=/tmp/helix-e2e-compose
  rm -rf "$HELIX_E2E_SOCKET_DIR" && mkdir -p "$HELIX_E2E_SOCKET_DIR"
  stack_up=1
  compose up -d --wait --wait-timeout 120
}
