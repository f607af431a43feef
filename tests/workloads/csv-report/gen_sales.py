"""Writes a deterministic sales CSV: `gen_sales.py --rows N PATH`.

The rows come from a fixed linear congruential generator (not `random`, whose algorithms may
change between Python versions), so every run on every machine writes the same bytes.
"""

import argparse
import csv
import datetime
import os


class Lcg:
    """Numerical Recipes' 32-bit LCG."""

    def __init__(self, seed):
        self.state = seed

    def next(self, n):
        """A number in [0, n)."""
        self.state = (1664525 * self.state + 1013904223) % 2**32
        return (self.state >> 8) % n


REGIONS = ["North", "South", "East", "West"]
PRODUCTS = [("widget", "2.50"), ("gadget", "12.00"), ("gizmo", "7.25"), ("doohickey", "0.99"), ("sprocket", "4.10")]
# Customer names, some with commas and quotes so the writer has to quote them.
CUSTOMERS = ["Acme Ltd", "Smith, J.", "O'Brien & Sons", 'The "Best" Shop', "Zed"]
DISCOUNTS = [0, 0, 0, 5, 10]
START = datetime.date(2024, 1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("path")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.path) or ".", exist_ok=True)
    rng = Lcg(20240101)
    with open(args.path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "date", "region", "customer", "product", "unit_price", "quantity", "discount_pct"])
        for i in range(args.rows):
            product, price = PRODUCTS[rng.next(len(PRODUCTS))]
            w.writerow(
                [
                    f"SO-{10000 + i}",
                    (START + datetime.timedelta(days=rng.next(366))).isoformat(),
                    REGIONS[rng.next(len(REGIONS))],
                    CUSTOMERS[rng.next(len(CUSTOMERS))],
                    product,
                    price,
                    1 + rng.next(20),
                    DISCOUNTS[rng.next(len(DISCOUNTS))],
                ]
            )
    print(f"wrote {args.rows} rows to {args.path}")


if __name__ == "__main__":
    main()
