#!/bin/sh
# CSV processing: generate a 1000-row sales file (deterministic), report on it, and write a
# per-product CSV summary.
set -eu
python3 gen_sales.py --rows 1000 data/sales.csv
python3 report.py data/sales.csv --by-product out/by_product.csv
echo "--- out/by_product.csv"
cat out/by_product.csv
