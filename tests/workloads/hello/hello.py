"""Prints the greeting, or writes it to the file named after --to."""

import sys

GREETING = "Hello, world! (python)"

if len(sys.argv) == 3 and sys.argv[1] == "--to":
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(GREETING + " from a file\n")
else:
    print(GREETING)
