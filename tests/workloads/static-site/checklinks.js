// Checks that every relative link (href) in the HTML pages under DIR names a file that exists:
// `node checklinks.js DIR`. Exits 1 listing the broken ones.
"use strict";
const fs = require("fs");
const path = require("path");

function walk(d) {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(d, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

const dir = process.argv[2];
const pages = walk(dir)
  .map((p) => path.relative(dir, p))
  .filter((f) => f.endsWith(".html"))
  .sort();
let links = 0;
const broken = [];
for (const page of pages) {
  const html = fs.readFileSync(path.join(dir, page), "utf8");
  for (const [, href] of html.matchAll(/href="([^"]+)"/g)) {
    if (/^[a-z]+:/.test(href)) continue; // external: http:, mailto:, …
    links++;
    const target = path.join(dir, path.dirname(page), href.split("#")[0]);
    if (!fs.existsSync(target)) broken.push(`${page}: ${href}`);
  }
}
console.log(`checked ${links} links in ${pages.length} pages: ${broken.length} broken`);
for (const b of broken) console.log(`broken: ${b}`);
process.exit(broken.length ? 1 : 0);
