"""Reports on a sales CSV: totals, per region, per quarter, the largest orders, and a per-product
summary written as CSV. Money is Decimal, rounded half-up to cents per order line."""

import argparse
import csv
import os
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def line_total(row):
    gross = Decimal(row["unit_price"]) * int(row["quantity"])
    net = gross * (100 - int(row["discount_pct"])) / 100
    return net.quantize(CENT, rounding=ROUND_HALF_UP)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--by-product", required=True)
    args = ap.parse_args()

    with open(args.path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))

    total = Decimal(0)
    units = 0
    regions = defaultdict(lambda: [0, Decimal(0)])
    quarters = defaultdict(Decimal)
    products = defaultdict(lambda: [0, 0, Decimal(0)])
    customers = set()
    orders = []
    for row in rows:
        t = line_total(row)
        q = int(row["quantity"])
        total += t
        units += q
        regions[row["region"]][0] += 1
        regions[row["region"]][1] += t
        quarters[f"{row['date'][:4]}-Q{(int(row['date'][5:7]) - 1) // 3 + 1}"] += t
        p = products[row["product"]]
        p[0] += 1
        p[1] += q
        p[2] += t
        customers.add(row["customer"])
        orders.append((t, row["order_id"], row["customer"]))

    print(f"rows: {len(rows)}")
    print(f"units: {units}")
    print(f"revenue: {total}")
    print(f"customers: {len(customers)}")
    print("by region:")
    for name, (n, rev) in sorted(regions.items(), key=lambda kv: (-kv[1][1], kv[0])):
        print(f"  {name:<6} {n:4} orders {rev:>10}")
    print("by quarter:")
    for qname in sorted(quarters):
        print(f"  {qname} {quarters[qname]:>10}")
    print("largest orders:")
    for t, oid, customer in sorted(orders, key=lambda o: (-o[0], o[1]))[:3]:
        print(f"  {oid} {t:>8} {customer}")

    os.makedirs(os.path.dirname(args.by_product) or ".", exist_ok=True)
    with open(args.by_product, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["product", "orders", "units", "revenue", "share_pct"])
        for name, (n, u, rev) in sorted(products.items()):
            share = (rev * 100 / total).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            w.writerow([name, n, u, rev, share])


if __name__ == "__main__":
    main()
