#!/usr/bin/env python3
"""Throughput, request rate and memory of corral's egress proxy, against direct connections.

A server in this process, on the host's 127.0.0.1, serves `/big` (a large body from memory) and
`/small` (16 bytes), one response per connection. The same client runs twice per round, paired
and interleaved:
  direct  outside any sandbox, connecting straight to the server;
  proxy   inside `corral run --network proxy` (allow = localhost:PORT, allow_cidrs = 127.0.0.1/32),
          through the proxy.
Workloads:
  download  curl fetching /big through a CONNECT tunnel (`-p`): MB/s;
  paced     the same for /paced, a quarter of /big sent at 100 MB/s (a fast real link): MB/s;
  plain     curl fetching /big as a plain HTTP request (absolute-form): MB/s;
  small     a Python client making N sequential requests for /small (a new connection each,
            through CONNECT for the proxy side): requests/s;
  tunnels   C concurrent tunnels, each downloading /big/C: aggregate MB/s.
The proxy's memory is the corral supervisor's peak RSS (VmHWM) during the run, polled from here,
against the same session with no traffic.

Run as root, it measures as the user `corral-test` (setpriv) in directories that user owns.
Prints medians and ratios; never fails on the numbers.

    python3 bench/proxy.py [--corral target/release/corral] [--rounds 5] [--mb 512]
"""
import argparse
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

CLIENT = r'''
import socket, sys, threading, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
via_proxy = sys.argv[4] == "proxy"

def open_conn():
    if not via_proxy:
        return socket.create_connection(("127.0.0.1", port))
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\n\r\n" % (host, port)).encode())
    r = b""
    while b"\r\n\r\n" not in r:
        r += s.recv(4096)
    return s

def fetch(path):
    s = open_conn()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode())
    n = 0
    buf = bytearray(262144)
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
    s.close()
    return n

if mode == "small":
    count = int(sys.argv[5])
    t = time.perf_counter()
    for _ in range(count):
        fetch("/small")
    print(count / (time.perf_counter() - t))
elif mode == "tunnels":
    conns, size = int(sys.argv[5]), int(sys.argv[6])
    total = [0]
    lock = threading.Lock()
    def one():
        n = fetch("/big?%d" % (size // conns))
        with lock:
            total[0] += n
    ts = [threading.Thread(target=one) for _ in range(conns)]
    t = time.perf_counter()
    for x in ts: x.start()
    for x in ts: x.join()
    print(total[0] / (time.perf_counter() - t) / 1e6)
'''

CHUNK = b"x" * (1 << 20)
# /paced: a link of this many bytes per second (a fast home or office line), where the proxy's
# own cost should not show.
RATE = 100e6


def serve(listener, default_size):
    def handle(c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            path = head.split(b" ", 2)[1].decode()
            if path.startswith("http://"):
                path = "/" + path.split("/", 3)[3]
            pace = None
            if path.startswith("/small"):
                body_len = 16
            elif path.startswith("/paced"):
                body_len, pace = default_size // 4, RATE
            elif "?" in path:
                body_len = int(path.split("?", 1)[1])
            else:
                body_len = default_size
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % body_len)
            left = body_len
            start = time.perf_counter()
            while left > 0:
                part = CHUNK if left >= len(CHUNK) else CHUNK[:left]
                c.sendall(part)
                left -= len(part)
                if pace:
                    # Hold the rate: sleep until this many bytes are due.
                    due = start + (body_len - left) / pace
                    time.sleep(max(0.0, due - time.perf_counter()))
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, _ = listener.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corral", default="target/release/corral")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=int, default=512, help="size of /big")
    ap.add_argument("--small", type=int, default=500, help="requests per `small` run")
    ap.add_argument("--tunnels", type=int, default=64)
    ap.add_argument("--user", default="corral-test")
    a = ap.parse_args()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    threading.Thread(target=serve, args=(listener, a.mb << 20), daemon=True).start()

    root = tempfile.mkdtemp(prefix="corral-proxybench-", dir="/tmp")
    os.chmod(root, 0o755)
    binary = os.path.join(root, "corral")
    shutil.copy(a.corral, binary)
    ws, home = os.path.join(root, "ws"), os.path.join(root, "home")
    os.makedirs(ws)
    os.makedirs(os.path.join(home, ".config/corral"))
    with open(os.path.join(home, ".config/corral/config.toml"), "w") as f:
        f.write(
            f'[network]\nmode = "proxy"\nallow = ["localhost:{port}"]\nallow_cidrs = ["127.0.0.1/32"]\n'
        )
    with open(os.path.join(ws, "client.py"), "w") as f:
        f.write(CLIENT)
    drop = []
    if os.getuid() == 0:
        pw = pwd.getpwnam(a.user)
        for dirpath, _, files in os.walk(root):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
        drop = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
    env = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

    def run(script, proxy):
        """Runs `sh -c script` directly or in the sandbox; returns (stdout, corral's peak RSS kB)."""
        if proxy:
            cmd = drop + [binary, "run", "--yes", "--", "sh", "-c", "export NO_PROXY= no_proxy=; " + script]
        else:
            cmd = drop + ["sh", "-c", script]
        p = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        peak = [0]

        def poll():
            while p.poll() is None:
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                peak[0] = max(peak[0], int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.02)

        t = threading.Thread(target=poll)
        t.start()
        out, _ = p.communicate()
        t.join()
        return out.decode().strip(), peak[0]

    url = f"http://localhost:{port}/big"
    workloads = {
        "download": (f"curl -s -o /dev/null -w '%{{speed_download}}' -p {url}",
                     f"curl -s -o /dev/null -w '%{{speed_download}}' http://127.0.0.1:{port}/big", 1e-6, "MB/s"),
        "plain": (f"curl -s -o /dev/null -w '%{{speed_download}}' {url}",
                  f"curl -s -o /dev/null -w '%{{speed_download}}' http://127.0.0.1:{port}/big", 1e-6, "MB/s"),
        "paced": (f"curl -s -o /dev/null -w '%{{speed_download}}' -p http://localhost:{port}/paced",
                  f"curl -s -o /dev/null -w '%{{speed_download}}' http://127.0.0.1:{port}/paced", 1e-6, "MB/s"),
        "small": (f"python3 client.py small localhost {port} proxy {a.small}",
                  f"python3 client.py small localhost {port} direct {a.small}", 1, "req/s"),
        "tunnels": (f"python3 client.py tunnels localhost {port} proxy {a.tunnels} {a.mb << 20}",
                    f"python3 client.py tunnels localhost {port} direct {a.tunnels} {a.mb << 20}", 1, "MB/s"),
    }
    print(f"proxy benchmark: {a.rounds} rounds, /big = {a.mb} MiB, {a.small} small requests, {a.tunnels} tunnels")
    _, idle_peak = run("true", True)
    peaks = []
    for name, (proxied, direct, scale, unit) in workloads.items():
        px, dr, ratios = [], [], []
        for _ in range(a.rounds):
            d_out, _ = run(direct, False)
            p_out, peak = run(proxied, True)
            peaks.append((name, peak))
            d, p = float(d_out) * scale, float(p_out) * scale
            dr.append(d)
            px.append(p)
            ratios.append(p / d)
        print(f"  {name:9} direct {statistics.median(dr):9.1f} {unit:5}  proxy {statistics.median(px):9.1f} {unit:5}"
              f"  proxy/direct median {statistics.median(ratios):.2f} (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  memory    corral supervisor peak RSS: idle session {idle_peak / 1024:.1f} MiB; "
          + ", ".join(f"{n} {max(p for m, p in peaks if m == n) / 1024:.1f} MiB" for n in workloads))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
