#!/usr/bin/env python3
"""Cost of the exec audit: a loop of N execs inside `corral run`, for two corral builds measured
paired and interleaved (one without the exec audit, e.g. built from an older commit, as --compare).

Run as root, it copies both binaries to a world-readable temporary directory and measures as the
user `corral-test` (setpriv), in a workspace owned by that user; as another user it measures as
that user. Prints medians and the per-round ratio; never fails on the numbers.

    python3 bench/exec_audit.py --corral target/release/corral --compare /path/to/old/corral
"""
import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corral", default="target/release/corral")
    ap.add_argument("--compare", required=True, help="the other build (e.g. without exec audit)")
    ap.add_argument("--execs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--user", default="corral-test")
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="corral-execbench-", dir="/tmp")
    os.chmod(root, 0o755)
    bins = {}
    for name, src in (("a", a.corral), ("b", a.compare)):
        bins[name] = os.path.join(root, f"corral-{name}")
        shutil.copy(src, bins[name])
        os.chmod(bins[name], 0o755)
    ws = os.path.join(root, "ws")
    home = os.path.join(root, "home")
    os.mkdir(ws)
    os.mkdir(home)
    drop = []
    if os.getuid() == 0:
        pw = pwd.getpwnam(a.user)
        for d in (ws, home):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    env = {"HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    script = f"i=0; while [ $i -lt {a.execs} ]; do /bin/true; i=$((i+1)); done"
    samples = {"a": [], "b": []}
    try:
        for r in range(a.rounds + 2):
            for k in ("a", "b") if r % 2 else ("b", "a"):
                cmd = drop + [bins[k], "run", "--yes", "--", "sh", "-c", script]
                t = time.perf_counter()
                subprocess.run(cmd, cwd=ws, env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r >= 2:  # two warm-up rounds
                    samples[k].append(time.perf_counter() - t)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for k, label in (("a", a.corral), ("b", a.compare)):
        med = statistics.median(samples[k])
        print(f"{label}: median {med * 1e3:.1f} ms for {a.execs} execs ({med * 1e6 / a.execs:.0f} us each)")
    ratios = [x / y for x, y in zip(samples["a"], samples["b"])]
    diffs = [(x - y) * 1e6 / a.execs for x, y in zip(samples["a"], samples["b"])]
    print(f"paired per round: a/b median {statistics.median(ratios):.3f}, "
          f"a-b median {statistics.median(diffs):.0f} us per exec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
