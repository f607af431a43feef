#!/usr/bin/env bash
# Runs corral's whole test suite. Real sandboxes are launched as an unprivileged user: when this
# runs as root (as CI does), tests drop to the user `corral-test`, created here if missing.
# CORRAL_TEST_REQUIRE=1 makes a test that would skip for a missing kernel feature fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! id corral-test >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash corral-test
fi
export CORRAL_TEST_REQUIRE="${CORRAL_TEST_REQUIRE:-1}"
exec cargo test --workspace --locked "$@"
