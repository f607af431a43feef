"""Prints a JUnit XML report as one line per test (`PASS file::name`) and a total: what pytest
found, without its timings."""

import sys
import xml.etree.ElementTree as ET

OUTCOMES = ("failure", "error", "skipped")

root = ET.parse(sys.argv[1]).getroot()
counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
lines = []
for case in root.iter("testcase"):
    outcome = next((o for o in OUTCOMES if case.find(o) is not None), "passed")
    key = {"failure": "failed", "error": "error", "skipped": "skipped", "passed": "passed"}[outcome]
    counts[key] += 1
    lines.append(f"{key.upper():7} {case.get('classname')}::{case.get('name')}")
for line in sorted(lines):
    print(line)
print(", ".join(f"{v} {k}" for k, v in counts.items()))
sys.exit(0 if counts["failed"] == counts["error"] == 0 else 1)
