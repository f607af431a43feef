"""Inventory sync: `inventory_sync.py CONFIG`.

Reads every page of the API's items, works out the stock value and what needs reordering, posts
that as a report, reads the report back and checks the round trip. The API's base URL is in the
JSON config (`{"base_url": …}`); proxies come from the environment (urllib's default).
"""

import json
import sys
import urllib.error
import urllib.request

USER_AGENT = "inventory-sync/1.0"
# Items with less stock than this are reordered.
REORDER_BELOW = 5


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body, sort_keys=True).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", USER_AGENT)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.load(resp)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        base = json.load(f)["base_url"].rstrip("/")
    print(f"proxy: {urllib.request.getproxies().get('http', 'none')}")

    items, page = [], 1
    while page:
        _, body = call(base, "GET", f"/v1/items?page={page}")
        items.extend(body["items"])
        print(f"page {page}: {len(body['items'])} items")
        page = body["next"]

    value = sum(i["stock"] * i["price_cents"] for i in items)
    reorder = sorted(i["sku"] for i in items if i["stock"] < REORDER_BELOW)
    report = {"items": len(items), "stock_value_cents": value, "reorder": reorder}
    print(f"items: {len(items)}, stock value: {value / 100:.2f}, reorder: {', '.join(reorder)}")

    status, created = call(base, "POST", "/v1/reports", report)
    print(f"report created ({status}): {created['id']}")
    _, stored = call(base, "GET", f"/v1/reports/{created['id']}")
    if stored != report:
        print(f"round trip differs: {stored!r}")
        return 1
    print("report read back: identical")
    try:
        call(base, "GET", "/v1/reports/nope")
    except urllib.error.HTTPError as e:
        print(f"unknown report: {e.code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
