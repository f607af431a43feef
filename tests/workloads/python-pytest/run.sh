#!/bin/sh
# A multi-file Python package tested with pytest, then used on a sample text. pytest's own output
# (timings) goes to build/pytest.log; what is printed is the JUnit report's outcome per test.
set -eu
mkdir -p build
if ! python3 -m pytest --junitxml=build/junit.xml >build/pytest.log 2>&1; then
    cat build/pytest.log
    exit 1
fi
python3 tools/junit_summary.py build/junit.xml
python3 -m textstats --top 5 sample.txt
