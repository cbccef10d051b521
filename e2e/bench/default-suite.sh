#!/usr/bin/env bash
# The default suite N times with fresh seeds, on this machine as it is or with the other core kept
# busy: how often a clean stand-in passes (it must: 10 out of 10, both ways).
#
#   bash e2e/bench/default-suite.sh 10            # idle machine
#   bash e2e/bench/default-suite.sh 10 --stress   # stress-ng --cpu 1 beside it
#
# Prints one line per run (seed, verdict, seconds, what failed) and a total; the artifact
# directories go to $ARTIFACTS (default artifacts/bench-default-suite).
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-10}"
stress="${2:-}"
exe="${HELIX_E2E:-${CARGO_TARGET_DIR:-target}/debug/helix-e2e}"
out="${ARTIFACTS:-artifacts/bench-default-suite}"
mkdir -p "$out"
load=""
if [ "$stress" = "--stress" ]; then
  command -v stress-ng >/dev/null || { echo "stress-ng is not installed (apt-get install stress-ng)" >&2; exit 2; }
  stress-ng --cpu 1 --quiet &
  load=$!
  trap 'kill $load 2>/dev/null || true' EXIT
fi
pass=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  set +e
  "$exe" run --json --artifacts "$out" >"$out/run-$i.json" 2>"$out/run-$i.stderr"
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  seed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed"])' "$out/run-$i.json" 2>/dev/null || echo "?")
  failed=$(python3 -c 'import json,sys
s=json.load(open(sys.argv[1]))
print("; ".join(sc["name"] + ": " + ", ".join(i["name"] for i in sc["invariants"] if not i["passed"]) for sc in s["scenarios"] if sc["verdict"] != "pass") or "-")' "$out/run-$i.json" 2>/dev/null || echo "no summary")
  [ "$rc" = 0 ] && pass=$((pass + 1))
  echo "run $i: seed $seed exit $rc ${secs}s failed: $failed"
done
echo "default suite: $pass/$n passed${stress:+ (with stress-ng --cpu 1)}"
