#!/bin/sh
# A log analyser over a generated 100 MiB web-server access log: the generator writes it into the
# project (deterministic), the analyser summarises it, and grep/wc cross-check two of the numbers.
set -eu
python3 gen_log.py --mib 100 logs/access.log
python3 analyse.py logs/access.log
echo "cross-check: $(wc -l <logs/access.log) lines, $(grep -c '" 5[0-9][0-9] ' logs/access.log) server errors"
