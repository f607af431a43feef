"use strict";
const assert = require("assert");
const { slugify, uniqueSlugs } = require("..");

const cases = [
  ["Hello, World!", "hello-world"],
  ["Crème brûlée & café", "creme-brulee-and-cafe"],
  ["Straße über Köln", "strasse-ueber-koeln"],
  ["  --  ", ""],
  ["Release 2.0: what's new?", "release-2-0-what-s-new"],
];
for (const [input, want] of cases) assert.strictEqual(slugify(input), want, input);
assert.strictEqual(slugify("one two three four", { maxLength: 9 }), "one-two");
assert.deepStrictEqual(uniqueSlugs(["A b", "a-B", "?", "A b"]), ["a-b", "a-b-2", "untitled", "a-b-3"]);
console.log(`slugkit: ${cases.length + 2} checks passed`);
