"""Summarises an access log (combined format plus the request time in seconds): traffic, status
classes, the busiest paths and hours, distinct clients and latency percentiles.
`analyse.py PATH`. Streams the file; memory does not grow with its size."""

import sys
from collections import Counter


def percentile(hist, total, p):
    """The smallest value (ms) with at least p% of the requests at or below it."""
    need = total * p / 100
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= need:
            return ms
    return 0


def main():
    path = sys.argv[1]
    lines = sent = 0
    statuses = Counter()
    paths = Counter()
    hours = Counter()
    clients = set()
    latency = Counter()
    errors_by_path = Counter()
    with open(path, encoding="ascii") as f:
        for line in f:
            # ip - - [ts] "METHOD path PROTO" status size "referer" "agent" seconds
            parts = line.split('"')
            head, request, tail, took = parts[0], parts[1], parts[2], parts[6]
            status, size = tail.split()
            lines += 1
            sent += int(size)
            statuses[status] += 1
            p = request.split(" ")[1].split("?")[0]
            paths[p] += 1
            hours[head[head.index("[") + 13 : head.index("[") + 15]] += 1
            clients.add(head[: head.index(" ")])
            latency[round(float(took) * 1000)] += 1
            if status[0] == "5":
                errors_by_path[p] += 1
    classes = Counter()
    for s, n in statuses.items():
        classes[s[0] + "xx"] += n
    print(f"requests: {lines}")
    print(f"bytes sent: {sent}")
    print(f"clients: {len(clients)}")
    print("status classes: " + ", ".join(f"{c} {classes[c]}" for c in sorted(classes)))
    print("top statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0]))[:4]))
    print("top paths:")
    for p, n in sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        print(f"  {n:7} {p}")
    busiest = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    print(f"busiest hour: {busiest[0]}:00 ({busiest[1]} requests, {len(hours)} hours seen)")
    print("latency ms: " + ", ".join(f"p{p} {percentile(latency, lines, p)}" for p in (50, 95, 99)))
    worst = sorted(errors_by_path.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    print(f"most server errors: {worst[0]} ({worst[1]})")


if __name__ == "__main__":
    main()
