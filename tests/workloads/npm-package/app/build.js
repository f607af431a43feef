// Writes build/index.json: one entry per line of chapters.txt, with a unique slug each.
"use strict";
const fs = require("fs");
const { uniqueSlugs } = require("slugkit");

const titles = fs.readFileSync("chapters.txt", "utf8").split("\n").filter(Boolean);
const slugs = uniqueSlugs(titles, { maxLength: 24 });
const index = titles.map((title, i) => ({ n: i + 1, title, slug: slugs[i], file: `${slugs[i]}.html` }));
fs.mkdirSync("build", { recursive: true });
fs.writeFileSync("build/index.json", JSON.stringify(index, null, 2) + "\n");
for (const e of index) console.log(`${e.n}. ${e.slug}`);
