#!/usr/bin/env python3
"""How long a healthy teardown takes on the stand-in, from the logs of finished runs.

The detectors' quick rules (F6 orphan streamer, F7 lobby mismatch) must not fire on an ordinary
teardown; their doc comments cite these numbers. For every moonlight-web session whose WebSocket
closed, from moonlight-web's log (`artifacts/<run>/logs/moonlight-web.log`):

  socket closed -> the streamer's `/cancel` of its Wolf session   (how long Wolf keeps it)
  socket closed -> `Streamer of session ... exited`                (how long the streamer lives)

Usage: python3 e2e/bench/teardown.py artifacts/<run> [artifacts/<run> ...]
"""
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def when(line):
    m = STAMP.match(line)
    return datetime.fromisoformat(m.group(1)).timestamp() if m else None


def teardowns(log):
    closed, cancel, exited = {}, {}, {}
    for line in log.read_text(errors="replace").splitlines():
        t = when(line)
        if t is None:
            continue
        if m := re.search(r"\[Stream\] WebSocket of session (\S+) closed", line):
            closed.setdefault(m.group(1), t)
        elif m := re.search(r"\[Streamer (\S+)\].*stop: cancelling the Wolf session", line):
            cancel.setdefault(m.group(1), t)
        elif m := re.search(r"\[Stream\] Streamer of session (\S+) exited", line):
            exited.setdefault(m.group(1), t)
    for s, t0 in closed.items():
        yield (cancel[s] - t0 if s in cancel else None, exited[s] - t0 if s in exited else None)


def summary(name, values):
    v = sorted(x * 1000 for x in values if x is not None)
    if not v:
        return f"{name}: no samples"
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return f"{name}: n={len(v)} median={statistics.median(v):.0f} ms p95={p95:.0f} ms max={v[-1]:.0f} ms"


def main(dirs):
    pairs = []
    for d in dirs:
        for log in Path(d).glob("**/logs/moonlight-web.log"):
            pairs.extend(teardowns(log))
    print(summary("socket closed -> /cancel of the Wolf session", [c for c, _ in pairs]))
    print(summary("socket closed -> streamer exited", [e for _, e in pairs]))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
