"""`python3 -m textstats [--top N] FILE`: prints the report on FILE."""

import argparse
import sys

from . import report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="textstats")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("file")
    args = ap.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        r = report(f.read(), args.top)
    print(f"words: {r.words}")
    print(f"distinct: {r.distinct}")
    print(f"sentences: {r.sentences}")
    print(f"words per sentence: {r.words_per_sentence}")
    for word, count in r.top:
        print(f"{count:3} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
