"""The catalog service: an HTTP JSON API over the products in `--data`.

    GET  /products          every product
    GET  /products/<sku>    one product (404 if unknown)
    POST /orders            {"sku": …, "quantity": n}: 201 with the order, or 409 when out of stock
    POST /shutdown          stops the server

Every request is appended to `--log` as `METHOD PATH STATUS`; `--ready` is created once the
port is listening.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Catalog:
    def __init__(self, products):
        self.products = {p["sku"]: dict(p) for p in products}
        self.orders = []
        self.lock = threading.Lock()

    def order(self, sku, quantity):
        with self.lock:
            p = self.products.get(sku)
            if p is None:
                return 404, {"error": f"unknown sku {sku}"}
            if quantity < 1 or p["stock"] < quantity:
                return 409, {"error": f"{sku}: {p['stock']} in stock, {quantity} wanted"}
            p["stock"] -= quantity
            order = {
                "id": len(self.orders) + 1,
                "sku": sku,
                "quantity": quantity,
                "total_cents": quantity * p["price_cents"],
            }
            self.orders.append(order)
            return 201, order


def handler(catalog, log):
    class Handler(BaseHTTPRequestHandler):
        def send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{self.command} {self.path} {status}\n")

        def do_GET(self):
            if self.path == "/products":
                self.send(200, sorted(catalog.products.values(), key=lambda p: p["sku"]))
            elif self.path.startswith("/products/") and self.path[10:] in catalog.products:
                self.send(200, catalog.products[self.path[10:]])
            else:
                self.send(404, {"error": "not found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/orders":
                req = json.loads(body)
                self.send(*catalog.order(req["sku"], int(req["quantity"])))
            elif self.path == "/shutdown":
                self.send(200, {"orders": len(catalog.orders)})
                threading.Thread(target=self.server.shutdown).start()
            else:
                self.send(404, {"error": "not found"})

        def log_message(self, *args):
            pass  # the log file above is the log

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        catalog = Catalog(json.load(f))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(catalog, args.log))
    open(args.ready, "w").close()
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
