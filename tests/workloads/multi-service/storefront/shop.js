// The storefront: `node shop.js CATALOG_URL BASKET`. Lists the catalog, orders every line of the
// basket through the catalog's API (one at a time: stock changes), prints the receipt, then asks
// the catalog to shut down.
"use strict";
const http = require("http");
const fs = require("fs");

const [base, basketFile] = process.argv.slice(2);

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      new URL(path, base),
      { method, headers: data ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) } : {} },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      }
    );
    req.on("error", reject);
    req.end(data);
  });
}

const money = (cents) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;

async function main() {
  const products = (await call("GET", "/products")).body;
  console.log(`catalog: ${products.length} products, ${products.filter((p) => p.stock > 0).length} in stock`);
  const names = Object.fromEntries(products.map((p) => [p.sku, p.name]));
  let total = 0;
  for (const line of JSON.parse(fs.readFileSync(basketFile, "utf8"))) {
    const r = await call("POST", "/orders", line);
    if (r.status === 201) {
      total += r.body.total_cents;
      console.log(`order ${r.body.id}: ${line.quantity} x ${names[line.sku]} = ${money(r.body.total_cents)}`);
    } else {
      console.log(`refused (${r.status}): ${r.body.error}`);
    }
  }
  console.log(`total: ${money(total)}`);
  const left = (await call("GET", "/products/TEA-02")).body.stock;
  console.log(`black tea left: ${left}`);
  const bye = await call("POST", "/shutdown");
  console.log(`catalog took ${bye.body.orders} orders`);
}

main().catch((e) => {
  console.error(`storefront: ${e.message}`);
  process.exit(1);
});
