// Builds lib/index.js: the transliteration table (data/translit.json) inlined, then every module
// of src/ in name order, then the exports. What gets packed is lib/, never src/.
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
const table = JSON.parse(fs.readFileSync(path.join(root, "data", "translit.json"), "utf8"));
const sources = fs.readdirSync(path.join(root, "src")).filter((f) => f.endsWith(".js")).sort();
const parts = [
  "// Built by scripts/build.js from src/ and data/translit.json: do not edit.",
  '"use strict";',
  `const TRANSLIT = ${JSON.stringify(table)};`,
  ...sources.map((f) => fs.readFileSync(path.join(root, "src", f), "utf8").trim()),
  "module.exports = { slugify, uniqueSlugs, TRANSLIT };",
  "",
];
fs.mkdirSync(path.join(root, "lib"), { recursive: true });
fs.writeFileSync(path.join(root, "lib", "index.js"), parts.join("\n"));
console.log(`slugkit: built lib/index.js from ${sources.length} modules, ${Object.keys(table).length} transliterations`);
