#!/usr/bin/env bash
# `helix-e2e watch` over a long stretch of rapid-cycles traffic: is its memory flat?
#
# Starts the stand-in (`helix-e2e refstack`), a watch on it through a target file (as an
# operator watches a deployment), and runs rapid-cycles against the same stack, one run after
# the other, until MINUTES have passed. Every minute it prints the watch's resident memory (the
# supervised watch process, not its supervisor), the sessions the watch saw created and the
# failures it named (from its own /metrics). A healthy stand-in names nothing; memory should stay
# flat once the model's window (80 s) is full. With PROBE_EVERY (e.g. 2m) the watch also runs its
# canary probes (a fresh Chromium each time) and the table counts them.
#
#   bash e2e/bench/watch-soak.sh [MINUTES=30]
#   PROBE_EVERY=2m bash e2e/bench/watch-soak.sh 30
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-30}"
exe="${HELIX_E2E:-${CARGO_TARGET_DIR:-target}/debug/helix-e2e}"
out="${ARTIFACTS:-artifacts/bench-watch-soak}"
port="${METRICS_PORT:-9464}"
mkdir -p "$out"
stack_dir=$(mktemp -d "${TMPDIR:-/tmp}/helix-e2e-soak-XXXXXX")
pids=()
traffic=""
cleanup() {
  # The traffic loop first, so it starts no next run; then its current run, which ends its tabs
  # and sessions on SIGINT and must be gone before the stand-in stops (or it names the stand-in's
  # exit D2, rightly, and writes its artifacts after they were removed).
  if [ -n "$traffic" ]; then
    kill "$traffic" 2>/dev/null || true
    pkill -INT -f -- "--artifacts $stack_dir/runs" 2>/dev/null || true
    for _ in $(seq 1 150); do pgrep -f -- "--artifacts $stack_dir/runs" >/dev/null || break; sleep 0.2; done
  fi
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$stack_dir"
}
trap cleanup EXIT

"$exe" refstack --dir "$stack_dir/stack" --announce "$stack_dir/endpoints.json" 2>"$out/refstack.stderr" &
pids+=($!)
for _ in $(seq 1 100); do [ -f "$stack_dir/endpoints.json" ] && break; sleep 0.2; done
[ -f "$stack_dir/endpoints.json" ] || { echo "the stand-in did not start; see $out/refstack.stderr" >&2; exit 2; }

# The target file names the variables that hold the secrets, as e2e/targets/*.toml do.
eval "$(python3 - "$stack_dir/endpoints.json" "$stack_dir/target.toml" <<'EOF'
import json, shlex, sys
e = json.load(open(sys.argv[1]))
logs = "\n".join(f'{s} = {{ file = "{p}" }}' for s, p in e["logs"])
open(sys.argv[2], "w").write(f'''name = "stand-in under soak"
reference = true
[helix]
url = "{e["helix_url"]}"
email_env = "HELIX_E2E_EMAIL"
password_env = "HELIX_E2E_PASSWORD"
[wolf]
socket = "{e["wolf_socket"]}"
https = "{e["wolf_moonlight_http"]}"
[moonlight_web]
url = "{e["moonlight_web_url"]}"
credentials_env = "MOONLIGHT_CREDENTIALS"
[logs]
{logs}
''')
for k, v in [("HELIX_E2E_EMAIL", e["user_email"]), ("HELIX_E2E_PASSWORD", e["user_password"]), ("MOONLIGHT_CREDENTIALS", e["moonlight_credentials"])]:
    print(f"export {k}={shlex.quote(v)}")
EOF
)"

"$exe" watch --json --target "$stack_dir/target.toml" --metrics "127.0.0.1:$port" ${PROBE_EVERY:+--probe-every "$PROBE_EVERY"} >"$out/watch.jsonl" 2>"$out/watch.stderr" &
outer=$!
pids+=("$outer")
inner=""
for _ in $(seq 1 100); do
  for p in $(pgrep -f "helix-e2e watch" || true); do
    [ "$p" = "$outer" ] && continue
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^HELIX_E2E_INNER='; then inner=$p; fi
  done
  [ -n "$inner" ] && break
  sleep 0.2
done
[ -n "$inner" ] || { echo "the watch did not start; see $out/watch.stderr" >&2; exit 2; }

# Traffic: rapid-cycles against the same stack, run after run.
(
  i=0
  while true; do
    i=$((i + 1))
    "$exe" run rapid-cycles --target "$stack_dir/target.toml" --params e2e/scenarios/rapid-cycles.toml \
      --time-scale 0.2 --seed "$i" --artifacts "$stack_dir/runs" --no-install >/dev/null 2>>"$out/traffic.stderr" || true
    rm -rf "$stack_dir/runs"
  done
) &
traffic=$!

metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { s += $2 } END { print s + 0 }'; }
named() { curl -s "http://127.0.0.1:$port/metrics" | awk '$1 ~ /^helix_e2e_failures_named_total/ { s += $2 } END { print s + 0 }'; }
rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$inner/status"; }
echo "watch pid $inner, $(nproc) cores, $minutes min of rapid-cycles traffic"
echo "minute  watch RSS MB  sessions created (moonlight-web)  failures named  probes ok/failed"
for m in $(seq 1 "$minutes"); do
  sleep 60
  [ -d "/proc/$inner" ] || { echo "the watch ended early; see $out/watch.stderr" >&2; exit 1; }
  printf '%6d  %12s  %32s  %14s  %16s\n' "$m" "$(rss_mb)" "$(metric 'helix_e2e_sessions_created_total{service="moonlight-web"}')" "$(named)" \
    "$(metric 'helix_e2e_probes_total{result="ok"}')/$(metric 'helix_e2e_probes_total{result="failed"}')"
done
kill -INT "$outer"
wait "$outer" || true
echo "named by the watch (should be none):"
grep '"event":"named"' "$out/watch.jsonl" || echo "  none"
tail -n 1 "$out/watch.stderr"
