#!/usr/bin/env bash
# One `helix-e2e` command for a workflow step: runs it (as root through as-root.sh when the
# command needs it, which `run` does for its network namespace), and tells the later steps
# where its artifact directory is (`run_dir`) and how it ended (`exit_code`) through
# $GITHUB_OUTPUT. Exits with the command's own code.
#
#   bash e2e/ci/suite.sh HELIX_E2E_BINARY run [ARGS...] --artifacts DIR
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
artifacts=artifacts
prev=
for a in "$@"; do
  if [ "$prev" = --artifacts ]; then artifacts="$a"; fi
  prev="$a"
done
bash "$here/as-root.sh" "$@"
code=$?
run_dir="$(ls -1dt "$artifacts"/*/ 2>/dev/null | head -n 1)"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "exit_code=$code" >> "$GITHUB_OUTPUT"
  echo "run_dir=${run_dir%/}" >> "$GITHUB_OUTPUT"
fi
exit "$code"
