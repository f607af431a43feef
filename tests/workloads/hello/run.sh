#!/bin/sh
# Hello world: the shell, Python and Node each greet, and the greeting is written into the project
# (the one writable place) and read back.
set -eu
echo "Hello, world! (sh)"
python3 hello.py
node hello.js
python3 hello.py --to greeting.txt
cat greeting.txt
