#!/usr/bin/env python3
"""Cost of review mode (the workspace as an overlay) against direct mode, on a large tree.

A git repository of N files in nested directories is the project. Each workload runs inside
`corral run` twice per round, direct and `--review`, paired and interleaved:
  status   `git status` (stats every file: overlay lookups over the whole tree);
  grep     `git grep -c corral` (reads every file);
  write    creates 2000 small files and modifies 200 existing ones (new files in upper, copy-ups);
  build    `make -j2` of 40 small C files (needs cc and make; skipped without them).
The review sessions are discarded after each run. Run as root, it measures as `corral-test`.
Prints medians and the median of the paired ratios; never fails on the numbers.

    python3 bench/review.py [--corral target/release/corral] [--files 20000] [--rounds 7]
"""
import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time

MAKEFILE = """OBJS := $(patsubst %.c,%.o,$(wildcard *.c))
prog: $(OBJS)
\t$(CC) -o $@ $(OBJS)
%.o: %.c
\t$(CC) -O0 -c $< -o $@
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corral", default="target/release/corral")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--user", default="corral-test")
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="corral-reviewbench-", dir="/tmp")
    os.chmod(root, 0o755)
    binary = os.path.join(root, "corral")
    shutil.copy(a.corral, binary)
    home = os.path.join(root, "home")
    ws = os.path.join(home, "proj")
    os.makedirs(ws)
    for i in range(a.files):
        d = os.path.join(ws, f"d{i % 50}", f"e{i % 20}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.txt"), "w") as f:
            f.write(f"line {i}\ncorral\n" * 4)
    build = shutil.which("cc") and shutil.which("make")
    if build:
        b = os.path.join(ws, "build")
        os.makedirs(b)
        for i in range(40):
            with open(os.path.join(b, f"f{i}.c"), "w") as f:
                f.write(f"int f{i}(int x) {{ return x * {i} + 1; }}\n")
        with open(os.path.join(b, "main.c"), "w") as f:
            f.write("int main(void) { return 0; }\n")
        with open(os.path.join(b, "Makefile"), "w") as f:
            f.write(MAKEFILE)
    git = ["git", "-c", "user.name=B", "-c", "user.email=b@example.com", "-c", "safe.directory=*"]
    subprocess.run(git + ["init", "-q"], cwd=ws, check=True)
    subprocess.run(git + ["add", "-A"], cwd=ws, check=True)
    subprocess.run(git + ["commit", "-qm", "base"], cwd=ws, check=True)
    drop = []
    if os.getuid() == 0:
        pw = pwd.getpwnam(a.user)
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", root], check=True)
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def run(script, review):
        cmd = drop + [binary, "-q", "run", "--yes"] + (["--review"] if review else []) + ["--", "sh", "-c", script]
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        took = time.perf_counter() - t
        if review:
            subprocess.run(drop + [binary, "--yes", "discard"], cwd=ws, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        else:
            # Undo the write workload so every round starts from the same tree.
            subprocess.run(drop + git + ["checkout", "-q", "--", "."], cwd=ws, env=env, check=False)
            subprocess.run(drop + git + ["clean", "-qfdx"], cwd=ws, env=env, check=False)
        return took

    workloads = {
        "status": "git -c safe.directory='*' status --porcelain > /dev/null",
        "grep": "git -c safe.directory='*' grep -c corral > /dev/null",
        "write": "mkdir -p new && i=0; while [ $i -lt 2000 ]; do echo x > new/n$i.txt; i=$((i+1)); done; "
                 "for f in d1/e1/*.txt; do echo y >> $f; done",
    }
    if build:
        workloads["build"] = "make -s -C build -j2 > /dev/null"
    print(f"review-mode benchmark: {a.files} files, {a.rounds} rounds (+1 warm-up), as {a.user if drop else 'self'}")
    for name, script in workloads.items():
        run(script, False)
        run(script, True)
        direct, review, ratios = [], [], []
        for _ in range(a.rounds):
            d = run(script, False)
            r = run(script, True)
            direct.append(d)
            review.append(r)
            ratios.append(r / d)
        print(f"  {name:7} direct {statistics.median(direct) * 1000:8.1f} ms   review {statistics.median(review) * 1000:8.1f} ms"
              f"   review/direct median {statistics.median(ratios):.2f} (rounds: {' '.join(f'{x:.2f}' for x in ratios)})")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
