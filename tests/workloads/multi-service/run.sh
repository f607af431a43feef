#!/bin/sh
# Two services talking over localhost inside the sandbox: the catalog (Python, an HTTP JSON API on
# 127.0.0.1:8781) and the storefront (Node), which reads the catalog, places orders through it,
# and prints the receipts. Then the catalog is told to stop, and its request log is printed.
set -eu
PORT=8781
mkdir -p run
rm -f run/catalog.ready run/catalog.log
python3 catalog/server.py --port "$PORT" --data catalog/products.json --log run/catalog.log --ready run/catalog.ready &
catalog=$!
# Whatever happens below, the catalog does not outlive this script.
trap 'kill "$catalog" 2>/dev/null || true' EXIT
i=0
while [ ! -e run/catalog.ready ]; do
    i=$((i + 1))
    if [ "$i" -gt 300 ] || ! kill -0 "$catalog" 2>/dev/null; then
        echo "catalog did not start" >&2
        exit 1
    fi
    sleep 0.1
done
node storefront/shop.js "http://127.0.0.1:$PORT" storefront/basket.json
status=0
wait "$catalog" || status=$?
echo "catalog exited with $status"
echo "catalog log:"
sed 's/^/  /' run/catalog.log
