#!/usr/bin/env bash
# A Docker engine inside a network namespace of the project's own, for the containerised
# reference stack.
#
#   bash e2e/reference/engine.sh start   # namespace + dockerd; returns once `docker info` answers
#   bash e2e/reference/engine.sh stop    # stops that dockerd (and its containers), deletes the namespace
#   bash e2e/reference/engine.sh status
#
# Why: this machine kind allows loopback traffic only. Containers run with the host network, and
# the engine's "host" is the namespace it runs in: loopback plus a veth pair on TEST-NET-2
# addresses (the same layout as src/netns.rs), with no link to the outside. The driver joins it
# with `helix-e2e run --netns helix-e2e-docker ...`, so the browser, the driver and the
# containers share one loopback. `ip netns exec dockerd` fails ("Devices cgroup isn't mounted":
# it remounts /sys), hence nsenter, which only switches the network namespace.
#
# Both commands are idempotent. Needs root, iproute2, nsenter (util-linux) and dockerd
# (Debian's docker.io). Settings (environment):
#   HELIX_E2E_NETNS          namespace name       (helix-e2e-docker)
#   HELIX_E2E_DOCKER_SOCKET  engine socket        (/var/run/docker.sock: what docker, docker-compose
#                                                  and helix-e2e use without DOCKER_HOST)
#   HELIX_E2E_DOCKER_ROOT    engine data root     (/var/lib/helix-e2e-docker: images survive restarts)
#   HELIX_E2E_DOCKER_LOG     dockerd's log        (/var/tmp/helix-e2e-dockerd.log)
set -euo pipefail

NS="${HELIX_E2E_NETNS:-helix-e2e-docker}"
SOCK="${HELIX_E2E_DOCKER_SOCKET:-/var/run/docker.sock}"
ROOT="${HELIX_E2E_DOCKER_ROOT:-/var/lib/helix-e2e-docker}"
LOG="${HELIX_E2E_DOCKER_LOG:-/var/tmp/helix-e2e-dockerd.log}"
EXEC_ROOT="/var/run/helix-e2e-docker"
PIDFILE="$EXEC_ROOT.pid"
READY_DEADLINE_S=60
STOP_DEADLINE_S=30

say() { echo "engine.sh: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() {
  timeout 5 docker -H "unix://$SOCK" info >/dev/null 2>&1
}

our_pid() {
  # The pid in our pidfile, if that process is a dockerd still running.
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] || return 1
  echo "$pid"
}

make_netns() {
  if [ -e "/var/run/netns/$NS" ]; then
    return 0
  fi
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add v0 type veth peer name v1        # both ends stay inside the namespace
  ip -n "$NS" addr add 198.51.100.2/24 dev v0           # TEST-NET-2: the project's own test hosts
  ip -n "$NS" addr add 198.51.100.3/24 dev v1
  ip -n "$NS" link set v0 up
  ip -n "$NS" link set v1 up
  ip -n "$NS" route add default dev v0                  # Chromium gathers no candidates without one
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root (it creates a network namespace and starts dockerd)"
  command -v dockerd >/dev/null || die "dockerd not found: apt-get install -y docker.io"
  command -v docker >/dev/null || die "docker (the CLI) not found: apt-get install -y docker.io"
  command -v nsenter >/dev/null || die "nsenter not found: apt-get install -y util-linux"
  if pid="$(our_pid)"; then
    if engine_answers; then
      say "already running (dockerd pid $pid in namespace $NS, socket $SOCK)"
      return 0
    fi
  elif engine_answers; then
    # A GitHub-hosted runner's, or a workstation's own: use it as it is. Its containers share
    # the network of the host it runs on, not namespace $NS: run the driver there (no --netns).
    say "an engine not started by engine.sh already answers on $SOCK: using it (its containers share its host's network: run helix-e2e without --netns)"
    return 0
  fi
  make_netns
  mkdir -p "$ROOT" "$EXEC_ROOT" "$(dirname "$LOG")"
  rm -f "$PIDFILE"
  say "starting dockerd in namespace $NS (log: $LOG)"
  # setsid: the engine outlives this script and is not hit by the caller's Ctrl-C; `stop` ends it.
  setsid nsenter --net="/var/run/netns/$NS" \
    dockerd --bridge=none --iptables=false --ip6tables=false \
      --host "unix://$SOCK" --data-root "$ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
      </dev/null >>"$LOG" 2>&1 &
  local launcher=$!
  local deadline=$((SECONDS + READY_DEADLINE_S))
  until engine_answers; do
    if ! kill -0 "$launcher" 2>/dev/null && ! our_pid >/dev/null; then
      tail -n 20 "$LOG" >&2 || true
      die "dockerd exited before answering; see $LOG"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$LOG" >&2 || true
      die "dockerd did not answer on $SOCK within ${READY_DEADLINE_S}s; see $LOG (still running: stop it with \`$0 stop\`)"
    fi
    sleep 0.5
  done
  say "ready: dockerd pid $(our_pid || echo '?') in namespace $NS, socket $SOCK"
}

stop() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  local pid
  if pid="$(our_pid)"; then
    say "stopping dockerd (pid $pid; it stops its containers)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_DEADLINE_S))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "dockerd still running after ${STOP_DEADLINE_S}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.5
    done
  fi
  rm -f "$PIDFILE"
  if [ -e "/var/run/netns/$NS" ]; then
    ip netns del "$NS" && say "namespace $NS deleted"
  fi
}

status() {
  if pid="$(our_pid)" && engine_answers; then
    echo "running: dockerd pid $pid in namespace $NS, socket $SOCK"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
