#!/bin/sh
# A static site generator (Node, no dependencies): Markdown posts with front matter become HTML
# pages in public/, with an index, per-tag pages and a feed; then every page's links are checked.
set -eu
node build.js content public
node checklinks.js public
echo "=== public/index.html"
cat public/index.html
