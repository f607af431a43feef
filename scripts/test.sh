#!/usr/bin/env bash
# Runs corral's whole test suite. Real sandboxes are launched as an unprivileged user: when this
# runs as root (as CI does), tests drop to the user `corral-test`, created here if missing.
# CORRAL_TEST_REQUIRE=1 makes a test that would skip for a missing kernel feature fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  if ! id corral-test >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash corral-test
  fi
  # Delegate a cgroup to the test user, as `sudo corral setup` does for a real user, so that the
  # memory, pids and CPU limits are enforced and tested (idempotent).
  cargo build --locked -p corral
  target/debug/corral setup --user corral-test
fi
export CORRAL_TEST_REQUIRE="${CORRAL_TEST_REQUIRE:-1}"
exec cargo test --workspace --locked "$@"
