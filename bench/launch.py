#!/usr/bin/python3
"""Launch benchmark: `corral run -- true` against bare `true` and bubblewrap.

A benchmark, not a test: it prints numbers and never fails on them. See BENCHMARKS.md.

Every command is started with os.posix_spawn and reaped with os.waitpid; the wall time around the
two is the sample. The commands are interleaved round-robin (the order rotates every round) so a
noisy neighbour hits all of them alike, and ratios are also computed per round (paired).

Commands (all as the same unprivileged user, same clean environment, cwd = the workspace):
  true            /usr/bin/true, the fork+exec floor
  bwrap           bubblewrap with the same namespaces, mounts, env, hostname and seccomp policy as
                  corral's plan (read from `corral run --dry-run --json`); no Landlock, no rlimits
  corral          corral run -- true, workspace where the protected paths already exist
  corral-repo     corral run -- true in a fresh `git init` repository: corral creates (and at exit
                  removes) placeholders for the protected paths that do not exist
  corral-empty    the same in an empty directory
  corral-version  corral --version: the binary's own start-up (dynamic loading, clap)
  corral-dryrun   corral run --dry-run -- true: host probe + plan + print, no sandbox
  corral-b        (with --compare PATH) another corral build, same workspace as `corral`

Run as root, the script prepares a fixture under /tmp (a fake home and workspaces owned by the
test user, the binary and this script copied to a world-readable directory) and runs its
measuring half as that user through `setpriv --reuid --regid --clear-groups`.

Usage: python3 bench/launch.py [--corral PATH] [--rounds 300] [--warmup 20] [--phases] [--json F]
"""

import argparse
import datetime
import json
import os
import platform
import pwd
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_USER = "corral-test"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"

# x86_64 syscall numbers for the names corral's seccomp policy uses (stable ABI; checked against
# /usr/include/x86_64-linux-gnu/asm/unistd_64.h, which is read too when present).
X86_64_NR = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "pidfd_getfd": 438, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "setns": 308, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "swapon": 167, "swapoff": 168,
    "reboot": 169, "acct": 163, "quotactl": 179, "syslog": 103, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "uselib": 134, "personality": 135, "lookup_dcookie": 212,
    "vhangup": 153, "clone3": 435, "clone": 56, "unshare": 272, "ioctl": 16, "socket": 41,
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# seccomp: corral's policy (from its dry-run JSON) compiled to classic BPF for `bwrap --seccomp`


def syscall_table():
    table = dict(X86_64_NR)
    hdr = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    try:
        with open(hdr) as f:
            for line in f:
                p = line.split()
                if len(p) == 3 and p[0] == "#define" and p[1].startswith("__NR_"):
                    table[p[1][5:]] = int(p[2])
    except OSError:
        pass
    return table


def compile_seccomp(policy):
    """Classic BPF mirroring corral's filter: arch check, x32 and clone3 -> ENOSYS, deny list ->
    EPERM, clone/unshare namespace flags -> EPERM, ioctl TIOCSTI/TIOCLINUX (low 32 bits) -> EPERM,
    socket families and netlink protocols allow-listed. Returns (bytes, skipped syscall names)."""
    LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38
    AUDIT_ARCH_X86_64, X32_BIT = 0xC000003E, 0x40000000
    nr = syscall_table()
    skipped = []
    prog = []  # (code, jt, jf, k) where jt/jf may be label names

    def ins(code, k, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    def arg_lo(i):
        return 16 + 8 * i

    ins(LD_ABS, 4)
    ins(JEQ, AUDIT_ARCH_X86_64, 0, "kill")
    ins(LD_ABS, 0)
    if policy.get("deny_x32", True):
        ins(JGE, X32_BIT, "enosys", 0)
    for name in policy.get("enosys", []):
        if name in nr:
            ins(JEQ, nr[name], "enosys", 0)
        else:
            skipped.append(name)
    for name in policy.get("deny", []):
        if name in nr:
            ins(JEQ, nr[name], "eperm", 0)
        else:
            skipped.append(name)
    ns_mask = 0
    for _, v in policy.get("deny_namespace_flags", []):
        ns_mask |= v
    if ns_mask:
        ins(JEQ, nr["clone"], "nsflags", 0)
        ins(JEQ, nr["unshare"], "nsflags", 0)
    if policy.get("deny_ioctls"):
        ins(JEQ, nr["ioctl"], "ioctl", 0)
    if policy.get("allow_socket_families"):
        ins(JEQ, nr["socket"], "socket", 0)
    ins(RET, ALLOW)
    labels = {}
    if ns_mask:
        labels["nsflags"] = len(prog)
        ins(LD_ABS, arg_lo(0))
        ins(JSET, ns_mask, "eperm", 0)
        ins(RET, ALLOW)
    if policy.get("deny_ioctls"):
        labels["ioctl"] = len(prog)
        ins(LD_ABS, arg_lo(1))
        for d in policy["deny_ioctls"]:
            ins(JEQ, d["request"] & 0xFFFFFFFF, "eperm", 0)
        ins(RET, ALLOW)
    if policy.get("allow_socket_families"):
        labels["socket"] = len(prog)
        ins(LD_ABS, arg_lo(0))
        netlink = None
        for fam_name, fam in policy["allow_socket_families"]:
            if fam_name == "AF_NETLINK" and policy.get("allow_netlink_protocols") is not None:
                netlink = fam
                continue
            ins(JEQ, fam, "allow", 0)
        if netlink is not None:
            ins(JEQ, netlink, "netlink", 0)
        ins(RET, EPERM)
        if netlink is not None:
            labels["netlink"] = len(prog)
            ins(LD_ABS, arg_lo(2))
            for _, proto in policy["allow_netlink_protocols"]:
                ins(JEQ, proto, "allow", 0)
            ins(RET, EPERM)
    labels["eperm"] = len(prog)
    ins(RET, EPERM)
    labels["enosys"] = len(prog)
    ins(RET, ENOSYS)
    labels["kill"] = len(prog)
    ins(RET, KILL)
    labels["allow"] = len(prog)
    ins(RET, ALLOW)
    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        assert 0 <= jt <= 255 and 0 <= jf <= 255, "BPF jump out of range"
        out += struct.pack("<HBBI", code, jt, jf, k)
    return out, skipped


# ---------------------------------------------------------------------------------------------
# outer half: fixture, the measuring half as the unprivileged user, then the phase table


def outer(args):
    """Prepares /tmp/corral-bench-XXXX, runs the measuring half as the unprivileged user (via
    setpriv when root), adds the phase breakdown if asked, prints the report."""
    drop = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(args.user)
        except KeyError:
            sys.exit(f"running as root needs the unprivileged user {args.user}: "
                     f"useradd -m {args.user}")
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    root = tempfile.mkdtemp(prefix="corral-bench-", dir="/tmp")
    os.chmod(root, 0o755)
    try:
        # The binary and this script go to a world-readable directory: the checkout may sit
        # below one the test user cannot enter (e.g. /root).
        bindir = os.path.join(root, "bin")
        os.mkdir(bindir)
        os.chmod(bindir, 0o755)
        corral = os.path.join(bindir, "corral")
        script = os.path.join(bindir, "launch.py")
        shutil.copy(args.corral, corral)
        shutil.copy(os.path.abspath(__file__), script)
        for f in (corral, script):
            os.chmod(f, 0o755)
        fx = os.path.join(root, "fx")
        os.mkdir(fx)
        if drop:
            os.chown(fx, pw.pw_uid, pw.pw_gid)
        user = args.user if drop else pwd.getpwuid(os.getuid()).pw_name
        env = {"HOME": fx, "USER": user, "PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
        # /usr/bin/python3 rather than sys.executable, which may live in root's home (pyenv).
        py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        cmd = drop + [py, script, "--child", fx, "--corral", corral,
                      "--rounds", str(args.rounds), "--warmup", str(args.warmup),
                      "--seed", str(args.seed)]
        if args.no_seccomp:
            cmd.append("--no-seccomp")
        if args.compare:
            other = os.path.join(bindir, "corral-b")
            shutil.copy(args.compare, other)
            os.chmod(other, 0o755)
            cmd += ["--compare", other]
        rc = subprocess.run(cmd, env=env, cwd=fx).returncode
        if rc != 0:
            sys.exit(rc)
        with open(os.path.join(fx, "result.json")) as f:
            res = json.load(f)
        if args.phases:
            res["phases"] = phases(drop, corral, res["env"], res["workspace"], fx)
        report(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# where corral's time goes: event times per launch, from perf tracepoints (root) or strace

PHASES = [
    ("start", "clone_enter", "supervisor: exec, start-up, host facts, plan, session, placeholders"),
    ("clone_enter", "fork_I", "clone() into the new namespaces"),
    ("fork_I", "init_exec", "re-exec of /proc/self/exe as init"),
    ("init_exec", "mount1", "init: dynamic loading, start-up, read plan, id maps"),
    ("mount1", "pivot", "init: mount steps until pivot_root"),
    ("pivot", "landlock", "pivot_root .. Landlock enforced"),
    ("landlock", "fork_enter", "caps dropped, seccomp compiled, layers reported"),
    ("fork_enter", "agent_execve", "fork of the command .. its execve"),
    ("agent_execve", "agent_exit", "true itself (exec, dynamic loading, exit)"),
    ("agent_exit", "end", "teardown: namespaces freed, session and placeholders removed"),
]
# strace (traced calls only) cannot see when the cloned child starts: one row for both.
PHASES_STRACE = PHASES[:1] + [("clone_enter", "init_exec",
                               "clone() into the new namespaces + re-exec as init")] + PHASES[3:]
MOUNT_NRS = {165, 428, 429, 442}  # mount, open_tree, move_mount, mount_setattr


def parse_perf(text):
    """Launches from `perf script` over raw_syscalls and sched tracepoints."""
    runs, cur = [], None
    for line in text.splitlines():
        head, _, rest = line.partition(": ")
        p = head.split()
        if len(p) < 4 or not p[-1].replace(".", "").isdigit():
            continue
        pid, t = int(p[-3]) if p[-2].startswith("[") else int(p[-2]), float(p[-1]) * 1e3
        ev, _, rest = rest.strip().partition(": ")
        ev = ev.strip()
        if ev == "sched:sched_process_exec":
            fn = rest.split()[0][len("filename="):]
            if fn.endswith("/corral"):
                cur = {"S": pid, "start": t}
                runs.append(cur)
            elif cur and pid == cur.get("I"):
                cur["init_exec"] = t
            elif cur and pid == cur.get("A"):
                cur.setdefault("agent_exec", t)
            continue
        if cur is None:
            continue
        if ev == "sched:sched_process_fork":
            f = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
            parent, child = int(f["pid"]), int(f["child_pid"])
            if parent == cur["S"] and "I" not in cur:
                cur["I"], cur["fork_I"] = child, t
            elif parent == cur.get("I") and "A" not in cur:
                cur["A"] = child
        elif ev == "sched:sched_process_exit":
            if pid == cur.get("A"):
                cur.setdefault("agent_exit", t)
            elif pid == cur["S"]:
                cur["end"] = t
        elif ev == "raw_syscalls:sys_enter":
            nr = int(rest.split()[1])
            if pid == cur["S"] and nr == 56:
                cur.setdefault("clone_enter", t)
            elif pid == cur.get("I"):
                if nr in MOUNT_NRS:
                    cur.setdefault("mount1", t)
                elif nr == 155:
                    cur["pivot"] = t
                elif nr == 446:
                    cur["landlock"] = t
                elif nr == 56 and "landlock" in cur:
                    cur.setdefault("fork_enter", t)
            elif pid == cur.get("A") and nr == 59:
                cur.setdefault("agent_execve", t)
    return runs


def parse_strace(text):
    """One launch from `strace -f -ttt`."""
    ev = {}
    for line in text.splitlines():
        p = line.split(None, 2)
        if len(p) < 3 or not p[0].isdigit():
            continue
        pid, t, what = int(p[0]), float(p[1]) * 1e3, p[2]
        ev.setdefault("start", t)
        ev["end"] = t
        if "S" not in ev:
            ev["S"] = pid
        if what.startswith("clone(") and "CLONE_NEWUSER" in what:
            ev.setdefault("clone_enter", t)
        elif what.startswith("execve(") and "__init" in what:
            ev["I"], ev["init_exec"] = pid, t
        elif pid == ev.get("I"):
            if what.startswith(("mount(", "open_tree(", "move_mount(", "mount_setattr(")):
                ev.setdefault("mount1", t)
            elif what.startswith("pivot_root("):
                ev["pivot"] = t
            elif what.startswith("landlock_restrict_self("):
                ev["landlock"] = t
            elif what.startswith("clone(") and "landlock" in ev:
                ev.setdefault("fork_enter", t)
        elif what.startswith("execve(") and "init_exec" in ev and "A" not in ev:
            ev["A"], ev["agent_execve"] = pid, t
        elif pid == ev.get("A") and (what.startswith("exit_group(") or what.startswith("+++")):
            ev.setdefault("agent_exit", t)
    return ev


def phases(drop, corral, env, ws, scratch, n_perf=40, n_strace=10):
    """Median duration of each launch phase over several `corral run -- true` in `ws`."""
    data = os.path.join(scratch, "phases.data")
    if os.geteuid() == 0 and shutil.which("perf"):
        tps = ["raw_syscalls:sys_enter", "sched:sched_process_fork", "sched:sched_process_exec",
               "sched:sched_process_exit"]
        loop = f'for i in $(seq {n_perf}); do "$0" run --yes -- true; done'
        cmd = ["perf", "record", "-q", "-o", data]
        for tp in tps:
            cmd += ["-e", tp]
        cmd += ["--"] + drop + ["/bin/sh", "-c", loop, corral]
        r = subprocess.run(cmd, env=env, cwd=ws, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            text = subprocess.run(["perf", "script", "-i", data], capture_output=True,
                                  text=True).stdout
            return phase_rows(parse_perf(text), "perf record of syscall-entry and sched "
                              "tracepoints (adds about 1 µs per syscall)")
        log(f"perf record failed ({r.stderr.strip()[:200]}); falling back to strace")
    if not shutil.which("strace"):
        log("neither perf (as root) nor strace: no phase table")
        return None
    runs = []
    for _ in range(n_strace):
        subprocess.run(drop + ["strace", "-f", "--seccomp-bpf", "-ttt", "-o", data, "-e",
                               "trace=execve,clone,mount,open_tree,move_mount,mount_setattr,"
                               "pivot_root,landlock_restrict_self,exit_group", corral, "run",
                               "--yes", "--", "true"], env=env, cwd=ws,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(data) as f:
            runs.append(parse_strace(f.read()))
    return phase_rows(runs, "strace -f --seccomp-bpf (ptrace stops inflate every phase)",
                      PHASES_STRACE)


def phase_rows(runs, method, steps=PHASES):
    rows = []
    for a, b, label in steps:
        v = [r[b] - r[a] for r in runs if a in r and b in r]
        if v:
            rows.append([label, statistics.median(v), pct(v, 0.1), pct(v, 0.9)])
    tot = [r["end"] - r["start"] for r in runs if "end" in r and "start" in r]
    return {"method": method, "runs": len(runs), "rows": rows,
            "total_ms": statistics.median(tot) if tot else None}


# ---------------------------------------------------------------------------------------------
# measuring half (unprivileged)


def make_fixture(base, corral):
    """base/home (fake HOME) with three workspaces: proj (every protected path present),
    proj-empty (empty) and proj-repo (fresh `git init`). Returns home, the workspaces, the clean
    environment and corral's plan for `proj`."""
    home = os.path.join(base, "home")
    ws = os.path.join(home, "proj")
    ws_empty = os.path.join(home, "proj-empty")
    ws_repo = os.path.join(home, "proj-repo")
    for d in (home, ws, ws_empty, ws_repo):
        os.makedirs(d, exist_ok=True)
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", ws_repo], check=True)
    else:
        os.makedirs(os.path.join(ws_repo, ".git", "hooks"))
        open(os.path.join(ws_repo, ".git", "config"), "w").close()
    env = {"HOME": home, "USER": pwd.getpwuid(os.getuid()).pw_name, "PATH": CLEAN_PATH,
           "LANG": "C.UTF-8"}
    # corral's plan says which protected paths it would create as placeholders; create them in
    # `proj` until it needs none (a present .git adds .git/hooks, .git/config, ...).
    for _ in range(5):
        plan = json.loads(subprocess.run([corral, "run", "--yes", "--dry-run", "--json", "--", "true"],
                                         cwd=ws, env=env, check=True,
                                         capture_output=True).stdout)
        if not plan.get("placeholders"):
            break
        for ph in plan["placeholders"]:
            if ph["kind"] == "dir":
                os.makedirs(ph["path"], exist_ok=True)
            else:
                open(ph["path"], "a").close()
    else:
        sys.exit("corral still plans placeholders after 5 rounds of creating them")
    return home, ws, ws_empty, ws_repo, env, plan


def bwrap_argv(bwrap, plan, ws, seccomp_fd):
    """bwrap with the namespaces, mounts, env, hostname and seccomp of corral's plan."""
    a = [bwrap, "--unshare-all", "--die-with-parent", "--hostname", plan.get("hostname", "corral")]
    for m in plan["mounts"]:
        op, dst = m["op"], m.get("dst", "")
        in_dev = dst.startswith("/dev/") and dst != "/dev/shm"
        if in_dev:
            continue  # device binds, devpts, ptmx and fd symlinks: bwrap's --dev makes them
        if op == "bind":
            a += ["--ro-bind" if m.get("access") == "read_only" else "--bind", m["src"], dst]
        elif op == "symlink":
            a += ["--symlink", m["target"], dst]
        elif op == "rebind" and m.get("why") == "proc":
            continue  # bwrap's --proc already makes /proc/sys & co. read-only
        elif op == "rebind":
            a += ["--ro-bind", dst, dst]
        elif op == "mask":
            a += ["--ro-bind", "/dev/null", dst]
        elif op == "proc":
            a += ["--proc", dst]
        elif op == "tmpfs" and dst == "/dev":
            a += ["--dev", "/dev"]
        elif op == "tmpfs":
            a += ["--perms", f"{m.get('mode', 0o755):o}"]
            if m.get("size_mb"):
                a += ["--size", str(m["size_mb"] << 20)]
            a += ["--tmpfs", dst]
        elif op == "read_only":
            a += ["--remount-ro", dst]
        else:
            log(f"bwrap: no equivalent for mount step {m}")
    a += ["--clearenv"]
    for e in plan["env"]:
        a += ["--setenv", e["name"], e["value"]]
    a += ["--chdir", ws]
    if seccomp_fd is not None:
        a += ["--seccomp", str(seccomp_fd)]
    return a + ["true"]


def spawn_wait(argv, env, cwd, actions):
    os.chdir(cwd)
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    return t1 - t0, status


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def boot_ci(xs, rng, n=2000):
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n)]


def child(args):
    base = args.child
    corral = args.corral
    bwrap = shutil.which("bwrap")
    home, ws, ws_empty, ws_repo, env, plan = make_fixture(base, corral)
    seccomp_path = None
    skipped = []
    if bwrap and not args.no_seccomp:
        if platform.machine() == "x86_64":
            blob, skipped = compile_seccomp(plan.get("seccomp", {}))
            seccomp_path = os.path.join(base, "bwrap-seccomp.bpf")
            with open(seccomp_path, "wb") as f:
                f.write(blob)
        else:
            log("seccomp filter for bwrap only built on x86_64; bwrap runs without one")
    devnull = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
    cmds = [("true", ["/usr/bin/true"], ws, devnull)]
    if bwrap:
        actions = list(devnull)
        fd = None
        if seccomp_path:
            fd = 3
            actions.append((os.POSIX_SPAWN_OPEN, fd, seccomp_path, os.O_RDONLY, 0))
        cmds.append(("bwrap", bwrap_argv(bwrap, plan, ws, fd), ws, actions))
    else:
        log("bwrap not found (apt-get install -y bubblewrap): measuring without it")
    cmds += [("corral", [corral, "run", "--yes", "--", "true"], ws, devnull),
             ("corral-repo", [corral, "run", "--yes", "--", "true"], ws_repo, devnull),
             ("corral-empty", [corral, "run", "--yes", "--", "true"], ws_empty, devnull),
             ("corral-version", [corral, "--version"], ws, devnull),
             ("corral-dryrun", [corral, "run", "--yes", "--dry-run", "--", "true"], ws, devnull)]
    if args.compare:
        cmds.append(("corral-b", [args.compare, "run", "--yes", "--", "true"], ws, devnull))

    # One checked run each, with its output shown on failure.
    out = os.path.join(base, "check.out")
    for name, argv, cwd, actions in cmds:
        acts = [a if a[1] not in (1, 2) else (os.POSIX_SPAWN_OPEN, a[1], out,
                                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                for a in actions]
        _, status = spawn_wait(argv, env, cwd, acts)
        if status != 0:
            with open(out, errors="replace") as f:
                sys.exit(f"{name} failed (status {status:#x}): {' '.join(argv)}\n{f.read()}")
        os.unlink(out)

    samples = {name: [] for name, *_ in cmds}
    total = args.warmup + args.rounds
    t_start = time.monotonic()
    for r in range(total):
        k = r % len(cmds)
        for name, argv, cwd, actions in cmds[k:] + cmds[:k]:
            ns, status = spawn_wait(argv, env, cwd, actions)
            if status != 0:
                sys.exit(f"{name} exited with status {status:#x} in round {r}")
            if r >= args.warmup:
                samples[name].append(ns / 1e6)
    elapsed = time.monotonic() - t_start

    rng = random.Random(args.seed)
    med = {n: statistics.median(v) for n, v in samples.items()}
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(), "nproc": os.cpu_count(),
        "uid": os.getuid(), "rounds": args.rounds, "warmup": args.warmup,
        "elapsed_s": round(elapsed, 1),
        "bwrap": subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
        if bwrap else None,
        "corral": subprocess.run([corral, "--version"], capture_output=True,
                                 text=True).stdout.strip(),
        "bwrap_seccomp": bool(seccomp_path), "bwrap_seccomp_skipped": skipped,
        "commands": {},
        "bwrap_argv": cmds[1][1] if bwrap else None,
    }
    for name, v in samples.items():
        res["commands"][name] = {
            "median_ms": med[name], "p10_ms": pct(v, 0.10), "p90_ms": pct(v, 0.90),
            "min_ms": min(v), "mean_ms": statistics.fmean(v),
        }

    def paired(a, b, op):
        xs = [op(x, y) for x, y in zip(samples[a], samples[b])]
        lo, hi = boot_ci(xs, rng)
        return {"median": statistics.median(xs), "ci95": [lo, hi]}

    ratio = lambda x, y: x / y  # noqa: E731
    diff = lambda x, y: x - y  # noqa: E731
    cmp = {}
    for c in ["corral", "corral-repo", "corral-empty"] + (["corral-b"] if args.compare else []):
        cmp[c] = {"over_true_ms": paired(c, "true", diff), "ratio_true": paired(c, "true", ratio)}
        if bwrap:
            cmp[c]["ratio_bwrap"] = paired(c, "bwrap", ratio)
            cmp[c]["ratio_bwrap_of_medians"] = med[c] / med["bwrap"]
    if args.compare:
        cmp["corral-b"]["ratio_corral"] = paired("corral-b", "corral", ratio)
    if bwrap:
        cmp["bwrap"] = {"over_true_ms": paired("bwrap", "true", diff),
                        "ratio_true": paired("bwrap", "true", ratio)}
    res["paired"] = cmp
    res["env"], res["workspace"] = env, ws
    with open(os.path.join(base, "result.json"), "w") as f:
        json.dump(res, f, indent=2)


def report(res):
    p = print
    p(f"# corral launch benchmark — {res['date']}")
    p(f"kernel {res['kernel']}, nproc {res['nproc']}, uid {res['uid']}, "
      f"{res['rounds']} paired rounds after {res['warmup']} warm-up, {res['elapsed_s']} s")
    p(f"{res['corral']}; {res['bwrap'] or 'no bwrap'}"
      f"{' (seccomp filter from corral plan)' if res['bwrap_seccomp'] else ' (no seccomp)'}")
    p()
    p("| command | median ms | p10 | p90 | min |")
    p("|---|---:|---:|---:|---:|")
    for n, c in res["commands"].items():
        p(f"| {n} | {c['median_ms']:.2f} | {c['p10_ms']:.2f} | {c['p90_ms']:.2f} | "
          f"{c['min_ms']:.2f} |")
    p()
    p("paired, per round (median, bootstrap 95% CI of the median):")
    p()
    p("| | over true, ms | × true | × bwrap |")
    p("|---|---:|---:|---:|")
    for n, c in res["paired"].items():
        o, t = c["over_true_ms"], c["ratio_true"]
        b = c.get("ratio_bwrap")
        bs = (f"{b['median']:.2f} [{b['ci95'][0]:.2f}–{b['ci95'][1]:.2f}]" if b else "—")
        p(f"| {n} | {o['median']:.2f} [{o['ci95'][0]:.2f}–{o['ci95'][1]:.2f}] | "
          f"{t['median']:.2f} | {bs} |")
    b = res["paired"].get("corral-b", {}).get("ratio_corral")
    if b:
        p(f"\ncorral-b / corral, paired: {b['median']:.3f} [{b['ci95'][0]:.3f}–{b['ci95'][1]:.3f}]")
    ph = res.get("phases")
    if ph:
        tot = f"{ph['total_ms']:.2f}" if ph["total_ms"] is not None else "?"
        p()
        p(f"where `corral` spends its time: {ph['runs']} traced launches, {ph['method']}; "
          f"median exec-to-exit {tot} ms under tracing:")
        p()
        p("| phase | median ms | p10 | p90 |")
        p("|---|---:|---:|---:|")
        for label, med, lo, hi in ph["rows"]:
            p(f"| {label} | {med:.2f} | {lo:.2f} | {hi:.2f} |")
    if res["bwrap_seccomp_skipped"]:
        p(f"\nsyscalls left out of bwrap's filter (unknown numbers): {res['bwrap_seccomp_skipped']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corral", default=os.path.join(REPO, "target", "release", "corral"),
                    help="corral binary (default: target/release/corral)")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1, help="bootstrap seed")
    ap.add_argument("--phases", action="store_true",
                    help="also trace corral launches and print where the time goes (perf "
                         "tracepoints as root, else strace)")
    ap.add_argument("--compare", metavar="PATH",
                    help="a second corral binary, measured as `corral-b` in the same rounds "
                         "(paired A/B of two builds)")
    ap.add_argument("--no-seccomp", action="store_true", help="run bwrap without a seccomp filter")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--user", default=TEST_USER, help="user to drop to when run as root")
    ap.add_argument("--keep", action="store_true", help="keep the fixture under /tmp")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    args.corral = os.path.abspath(args.corral)
    if not os.access(args.corral, os.X_OK):
        sys.exit(f"no corral binary at {args.corral}: cargo build --release -p corral")
    if args.compare:
        args.compare = os.path.abspath(args.compare)
    return outer(args)


if __name__ == "__main__":
    main()
