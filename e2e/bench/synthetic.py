#!/usr/bin/env python3
"""What a synthetic viewer costs, and how many one machine holds (README "Synthetic viewers").

Runs `helix-e2e run concurrent-sessions` with REAL real tabs and each N of synthetic viewers
(--counts), for each decode mode (--decodes), and samples once a second, while the run lasts:
the run process's own CPU and resident memory (where the synthetic viewers live), and the CPU of
every process of the run (Chromium, the stand-in's services and streamers: one more streamer per
synthetic viewer). Prints one line per run and the cost per viewer against the N=0 run:

  python3 e2e/bench/synthetic.py --counts 0,4,8,12 --decodes every,keyframes --hold-s 20

A run that fails (a check or a named failure) is reported as such: the largest N that passes is
what this machine holds. Uses target/debug/helix-e2e unless --bin says otherwise.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        # fields after the name: state=0, ppid=1, utime=11, stime=12, rss=21
        return int(parts[1]), (int(parts[11]) + int(parts[12])) / TICK, int(parts[21]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def is_run(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        return os.path.basename(argv[0]) == b"helix-e2e" and argv[1:2] == [b"run"]
    except (OSError, IndexError):
        return False


def tree(root):
    """Every live process under root (root included): pid -> (cpu seconds, rss bytes)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = stat(int(d))
            if s:
                procs[int(d)] = s
    out, todo = {}, [root]
    while todo:
        p = todo.pop()
        if p in procs and p not in out:
            out[p] = procs[p][1:]
            todo.extend(c for c, s in procs.items() if s[0] == p)
    return out


def one(args, n, decode):
    art = tempfile.mkdtemp(prefix="helix-e2e-bench-synthetic-")
    cmd = [args.bin, "run", "concurrent-sessions", "--json", "--seed", "7", "--agent-sessions", str(args.real), "--drop", "0",
           "--hold-s", str(args.hold_s), "--synthetic-viewers", str(n), "--synthetic-decode", decode, "--artifacts", art]
    t0 = time.time()
    sup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    run_pid = None
    seen = {}  # pid -> last cpu seconds (processes that end keep their last reading)
    run_cpu, run_rss, samples = 0.0, 0, 0
    while sup.poll() is None:
        time.sleep(1.0)
        procs = tree(sup.pid)
        if run_pid is None:
            # The run: the helix-e2e `run` process under the supervisor (a namespace wrapper may
            # sit between them), not a service or a streamer.
            runs = [p for p in procs if p != sup.pid and is_run(p)]
            run_pid = runs[-1] if runs else None
        for p, (cpu, _) in procs.items():
            seen[p] = cpu
        if run_pid in procs:
            run_cpu, rss = procs[run_pid]
            run_rss = max(run_rss, rss)
            samples += 1
    wall = time.time() - t0
    out = sup.stdout.read()
    try:
        s = json.loads(out)
        verdict = s["verdict"]
        named = [d["fault"] for sc in s["scenarios"] for d in sc["detections"]]
        failed = [r["name"] for sc in s["scenarios"] for r in sc["invariants"] if not r["passed"]]
    except (ValueError, KeyError):
        verdict, named, failed = "no summary", [], []
    if verdict == "pass":
        # Nothing of a passing run stays in /tmp; a failing one is kept to be looked at.
        shutil.rmtree(art, ignore_errors=True)
        art = None
    return {"n": n, "decode": decode, "wall_s": wall, "run_cpu_pct": 100 * run_cpu / wall, "run_rss_mib": run_rss / 2**20,
            "all_cpu_pct": 100 * sum(seen.values()) / wall, "verdict": verdict, "named": named, "failed": failed[:3], "artifacts": art}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "helix-e2e"))
    ap.add_argument("--real", type=int, default=1, help="real Chromium tabs (default 1)")
    ap.add_argument("--counts", default="0,4,8", help="synthetic viewer counts, comma-separated; 0 is the baseline")
    ap.add_argument("--decodes", default="every,keyframes")
    ap.add_argument("--hold-s", type=float, default=20.0)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    for decode in args.decodes.split(","):
        for n in counts:
            r = one(args, n, decode)
            rows.append(r)
            print(f"{decode:9} N={n:3}  {r['verdict']:6}  wall {r['wall_s']:5.1f} s  run process {r['run_cpu_pct']:5.1f} % CPU, "
                  f"{r['run_rss_mib']:6.1f} MiB peak  |  whole run {r['all_cpu_pct']:5.1f} % CPU  {r['named'] or ''}{r['failed'] or ''}", flush=True)
    for decode in args.decodes.split(","):
        base = next((r for r in rows if r["decode"] == decode and r["n"] == 0), None)
        for r in rows:
            if base and r["decode"] == decode and r["n"] > 0:
                n = r["n"]
                print(f"{decode:9} N={n:3}: per synthetic viewer {(r['run_cpu_pct'] - base['run_cpu_pct']) / n:5.2f} % CPU and "
                      f"{(r['run_rss_mib'] - base['run_rss_mib']) / n:5.2f} MiB in the driver; with its session's stack "
                      f"{(r['all_cpu_pct'] - base['all_cpu_pct']) / n:5.2f} % CPU")
    sys.exit(0 if all(r["verdict"] == "pass" for r in rows) else 1)


if __name__ == "__main__":
    main()
