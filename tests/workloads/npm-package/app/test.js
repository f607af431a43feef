"use strict";
const assert = require("assert");
const index = require("./build/index.json");

assert.strictEqual(index.length, 5);
assert.strictEqual(new Set(index.map((e) => e.slug)).size, index.length, "slugs are unique");
for (const e of index) assert.match(e.slug, /^[a-z0-9]+(-[a-z0-9]+)*$/);
console.log(`docs-index: ${index.length} entries checked`);
