#!/usr/bin/env bash
# The driver's own cost while N viewer tabs stream the stand-in: multi-tab-same-lobby with N tabs
# held for HOLD_S seconds. After a warm-up, every 30 s it prints the driver process's CPU over
# that window (utime+stime from /proc, as % of one core, and per tab) and its resident memory.
# Only the driver counts: Chromium, the stand-in's services and its streamers are other
# processes. The driver is the process the supervisor starts inside the run's namespace (its
# environment has HELIX_E2E_INNER, its first argument is `run`).
#
#   bash e2e/bench/driver-cpu.sh [TABS=8] [HOLD_S=120]
#   bash e2e/bench/driver-cpu.sh 8 630       # a 10-minute hold: is memory flat?
set -euo pipefail
cd "$(dirname "$0")/../.."
tabs="${1:-8}"
hold="${2:-120}"
warmup=40
exe="${HELIX_E2E:-${CARGO_TARGET_DIR:-target}/debug/helix-e2e}"
out="${ARTIFACTS:-artifacts/bench-driver-cpu}"
mkdir -p "$out"
params="$out/params.toml"
printf 'tabs = %s\ndrop = 1\nhold_s = %s\n' "$tabs" "$hold" >"$params"
"$exe" run multi-tab-same-lobby --params "$params" --artifacts "$out" --json >"$out/run.json" 2>"$out/run.stderr" &
outer=$!
trap 'kill -INT $outer 2>/dev/null || true' EXIT

inner=""
for _ in $(seq 1 100); do
  for p in $(pgrep -f "multi-tab-same-lobby" || true); do
    [ "$p" = "$outer" ] && continue
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^HELIX_E2E_INNER=' &&
      [ "$(tr '\0' '\n' <"/proc/$p/cmdline" | sed -n 2p)" = "run" ]; then
      inner=$p
    fi
  done
  [ -n "$inner" ] && break
  sleep 0.2
done
[ -n "$inner" ] || { echo "the driver process did not start; see $out/run.stderr" >&2; exit 2; }

hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$inner/stat"; }
rss_mb() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$inner/status"; }
sleep "$warmup"
echo "driver pid $inner, $tabs tabs, $(nproc) cores; 30 s windows from ${warmup} s"
windows=$(( (hold - warmup + 10) / 30 ))
for w in $(seq 1 "$windows"); do
  [ -d "/proc/$inner" ] || break
  t0=$(cpu)
  sleep 30
  [ -d "/proc/$inner" ] || break
  t1=$(cpu)
  awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$tabs" -v w="$w" -v rss="$(rss_mb)" \
    'BEGIN { pct = (b - a) / hz / 30 * 100; printf "window %d: driver %.1f %% of a core, %.2f %% per tab, RSS %d MB\n", w, pct, pct / n, rss }'
done
wait "$outer" || true
trap - EXIT
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("run verdict:", s["verdict"])' "$out/run.json" 2>/dev/null || echo "run verdict: no summary (see $out/run.stderr)"
