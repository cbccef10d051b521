#!/usr/bin/env bash
# Compose for docker-compose.e2e.yaml, v2 (`docker compose`, Docker's plugin) or v1
# (`docker-compose`, Debian's), whichever is here, so that every script, workflow and README line
# says the same. v1 has no `up --wait`: it is done here, by waiting until each started
# container is healthy (or running, when it has no health check), within --wait-timeout.
#
#   bash e2e/ci/compose.sh --profile helix up -d --wait --wait-timeout 300
#   bash e2e/ci/compose.sh --profile reference down
set -euo pipefail
file="$(cd "$(dirname "$0")/../.." && pwd)/docker-compose.e2e.yaml"
if docker compose version >/dev/null 2>&1; then
  exec docker compose -f "$file" "$@"
fi
command -v docker-compose >/dev/null || { echo "compose.sh: neither \`docker compose\` nor \`docker-compose\` is installed (bash e2e/ci/deps.sh)" >&2; exit 1; }

args=() wait=0 timeout=300 prev=
for a in "$@"; do
  case "$a" in
    --wait) wait=1 ;;
    --wait-timeout) ;;
    *) if [ "$prev" = --wait-timeout ]; then timeout="$a"; else args+=("$a"); fi ;;
  esac
  prev="$a"
done
docker-compose -f "$file" "${args[@]}"
[ "$wait" = 1 ] || exit 0
# The global options (before the command) select the same project and profile for `ps`.
global=()
for a in "${args[@]}"; do
  case "$a" in up) break ;; *) global+=("$a") ;; esac
done
deadline=$((SECONDS + timeout))
while :; do
  waiting=()
  for id in $(docker-compose -f "$file" "${global[@]}" ps -q); do
    state="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
    case "$state" in healthy|running) ;; *) waiting+=("$(docker inspect -f '{{.Name}}' "$id") $state") ;; esac
  done
  [ ${#waiting[@]} -eq 0 ] && exit 0
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "compose.sh: not healthy within ${timeout}s: ${waiting[*]}" >&2
    exit 1
  fi
  sleep 1
done
