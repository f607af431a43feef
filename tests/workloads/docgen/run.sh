#!/bin/sh
# A documentation generator: reads the docstrings of the modules under src/ (by parsing, not
# importing them) and renders Markdown pages from templates/ into docs/.
set -eu
python3 docgen.py --src src --templates templates --out docs
for f in docs/*.md; do
    echo "=== $f"
    cat "$f"
done
