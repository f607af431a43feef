"""Writes a deterministic access log (combined format plus the request time in seconds) of at
least `--mib` MiB, in whole lines: `gen_log.py --mib N PATH`.

Fast on purpose: a pool of request lines is drawn once from a fixed LCG; each second of the day
then takes the next lines (as many as its hour's rate) of a walk through the pool under its own
timestamp, and the file is written in large chunks.
"""

import argparse
import datetime
import os

POOL = 4093  # prime: the walk below visits every pool entry before repeating
# Requests per second in each hour of the day (UTC): quiet at night, busy in the afternoon.
RATE_BY_HOUR = [4, 3, 3, 3, 4, 6, 9, 12, 15, 16, 16, 15, 14, 15, 17, 16, 15, 14, 12, 10, 9, 8, 6, 5]
CHUNK_SECONDS = 1000
START = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


class Lcg:
    """Numerical Recipes' 32-bit LCG (not `random`: its algorithms may change between versions)."""

    def __init__(self, seed):
        self.state = seed

    def next(self, n):
        self.state = (1664525 * self.state + 1013904223) % 2**32
        return (self.state >> 8) % n


PATHS = [
    "/", "/index.html", "/api/items", "/api/items/42", "/api/items?page=2", "/api/orders",
    "/static/app.js", "/static/style.css", "/login", "/logout", "/search?q=corral", "/health",
]
METHODS = ["GET"] * 8 + ["POST", "PUT", "DELETE"]
# Weighted: mostly 200s, some redirects and client errors, a few server errors.
STATUSES = [200] * 40 + [201, 204, 301, 302, 304, 304] + [400, 401, 403, 404, 404, 404] + [500, 502, 503]
AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0", "python-requests/2.31", "Go-http-client/1.1"]


def pool():
    rng = Lcg(7)
    out = []
    for _ in range(POOL):
        ip = f"10.{rng.next(4)}.{rng.next(16)}.{1 + rng.next(250)}"
        status = STATUSES[rng.next(len(STATUSES))]
        size = 0 if status in (204, 304) else 200 + rng.next(20000)
        req = f"{METHODS[rng.next(len(METHODS))]} {PATHS[rng.next(len(PATHS))]} HTTP/1.1"
        took = f"{(1 + rng.next(400) + (1500 if status >= 500 else 0)) / 1000:.3f}"
        out.append((ip, f'"{req}" {status} {size} "-" "{AGENTS[rng.next(len(AGENTS))]}" {took}\n'))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, required=True)
    ap.add_argument("path")
    args = ap.parse_args()
    want = args.mib * 1024 * 1024
    entries = pool()
    os.makedirs(os.path.dirname(args.path) or ".", exist_ok=True)
    written = lines = 0
    k = 0
    second = 0
    with open(args.path, "w", encoding="ascii") as f:
        while written < want:
            chunk = []
            for s in range(second, second + CHUNK_SECONDS):
                t = START + datetime.timedelta(seconds=s)
                ts = t.strftime("[%d/%b/%Y:%H:%M:%S +0000]")
                for _ in range(RATE_BY_HOUR[t.hour]):
                    ip, rest = entries[k]
                    k = (k + 1009) % POOL
                    chunk.append(f"{ip} - - {ts} {rest}")
            second += CHUNK_SECONDS
            # Trim the last chunk to the first line that reaches the size.
            data = "".join(chunk)
            if written + len(data) >= want:
                size = 0
                for i, line in enumerate(chunk):
                    size += len(line)
                    if written + size >= want:
                        data = "".join(chunk[: i + 1])
                        chunk = chunk[: i + 1]
                        break
            f.write(data)
            written += len(data)
            lines += len(chunk)
    print(f"generated {args.path}: {lines} lines, {written} bytes")


if __name__ == "__main__":
    main()
