#!/usr/bin/env python3
"""Cost of the exec audit (every execve inside waits for the supervisor to read its arguments).

Two workloads inside `corral run`, each measured with the exec audit on and off, paired and
interleaved:
  loop   `sh -c` running /bin/true N times: nothing but exec, the worst case;
  build  `make -j2` compiling 40 small C files and linking them (cc, cc1, as, collect2, ld: a
         build that forks a lot), needs cc and make.
"Off" is the same binary with a profile setting `sandbox.audit_exec = false` (or, with
--compare, another build, e.g. one from before the exec audit existed).

Run as root, it copies the binary to a world-readable temporary directory and measures as the user
`corral-test` (setpriv), in a workspace owned by that user; as another user it measures as that
user. Prints medians and the per-round ratio; never fails on the numbers.

    python3 bench/exec_audit.py [--corral target/release/corral] [--workload loop,build]
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

MAKEFILE = """OBJS := $(patsubst %.c,%.o,$(wildcard *.c))
prog: $(OBJS)
\t$(CC) -o $@ $(OBJS)
%.o: %.c
\t$(CC) -O0 -c $< -o $@
clean:
\trm -f *.o prog
"""


def write_build(ws, files=40):
    for i in range(files):
        with open(os.path.join(ws, f"f{i}.c"), "w") as f:
            f.write(f"int f{i}(int x) {{ return x * {i} + 1; }}\n")
    with open(os.path.join(ws, "main.c"), "w") as f:
        f.write("int main(void) { return 0; }\n")
    with open(os.path.join(ws, "Makefile"), "w") as f:
        f.write(MAKEFILE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corral", default="target/release/corral")
    ap.add_argument("--compare", help="another build as the 'off' side (default: audit_exec = false)")
    ap.add_argument("--workload", default="loop,build")
    ap.add_argument("--execs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--user", default="corral-test")
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="corral-execbench-", dir="/tmp")
    os.chmod(root, 0o755)
    on_bin = os.path.join(root, "corral-on")
    shutil.copy(a.corral, on_bin)
    off_bin = on_bin
    if a.compare:
        off_bin = os.path.join(root, "corral-off")
        shutil.copy(a.compare, off_bin)
    ws = os.path.join(root, "ws")
    home = os.path.join(root, "home")
    os.mkdir(ws)
    os.mkdir(home)
    off_profile = os.path.join(root, "off.toml")
    with open(off_profile, "w") as f:
        f.write("[sandbox]\naudit_exec = false\n")
    write_build(ws)
    drop = []
    if os.getuid() == 0:
        pw = pwd.getpwnam(a.user)
        for dirpath, _, files in os.walk(root):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    for b in (on_bin, off_bin):
        os.chmod(b, 0o755)
    env = {"HOME": home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    workloads = {
        "loop": ["sh", "-c", f"i=0; while [ $i -lt {a.execs} ]; do /bin/true; i=$((i+1)); done"],
        "build": ["sh", "-c", "make -s clean && make -s -j2"],
    }
    sides = {
        "on": [on_bin, "run", "--yes"],
        "off": [off_bin, "run", "--yes"] + ([] if a.compare else ["--profile", off_profile]),
    }
    try:
        for w in a.workload.split(","):
            samples = {"on": [], "off": []}
            for r in range(a.rounds + 2):
                for k in ("on", "off") if r % 2 else ("off", "on"):
                    cmd = drop + sides[k] + ["--"] + workloads[w]
                    t = time.perf_counter()
                    subprocess.run(cmd, cwd=ws, env=env, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if r >= 2:  # two warm-up rounds
                        samples[k].append(time.perf_counter() - t)
            on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
            ratio = statistics.median([x / y for x, y in zip(samples["on"], samples["off"])])
            print(f"{w}: audit on {on * 1e3:.1f} ms, off {off * 1e3:.1f} ms (medians of {a.rounds}); "
                  f"paired on/off median x{ratio:.3f}")
            if w == "loop":
                diffs = [(x - y) * 1e6 / a.execs for x, y in zip(samples["on"], samples["off"])]
                print(f"loop: {statistics.median(diffs):.0f} us more per exec (paired median)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
