#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of corral-core and corral-net for SECONDS each (default 20), as
# many at once as there are CPUs, and fails if any crashes (the input is saved under
# crates/<crate>/fuzz/artifacts/<target>/). Installs a nightly toolchain and cargo-fuzz when they
# are missing. Each target's corpus (crates/<crate>/fuzz/corpus/<target>/, not committed) is seeded
# here when empty, and always gets the committed regressions (fuzz/regressions/<target>/).
#
#   scripts/fuzz.sh        # CI: 20 s per target
#   scripts/fuzz.sh 600    # longer: 10 minutes per target
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS per target, default 20]" >&2
  exit 2
fi
# A single input that runs this long is a hang, reported like a crash.
per_input_timeout=10

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# seed CRATE TARGET NAME BYTES: writes one seed input (printf %b escapes) into the target's corpus.
seed() {
  printf '%b' "$4" >"crates/$1/fuzz/corpus/$2/seed-$3"
}

# Seeds a target's corpus when it is empty: real inputs of each format, so that 20 s go into
# mutating them rather than into discovering the syntax.
seed_corpus() {
  local crate=$1 target=$2
  local dir="crates/$crate/fuzz/corpus/$target"
  mkdir -p "$dir"
  if [ -n "$(ls -A "$dir")" ]; then
    return
  fi
  case "$target" in
    profile)
      cp crates/corral-core/profiles/*.toml "$dir/"
      seed "$crate" "$target" project '[network]\nallow = ["*.example.com:8443"]\n[filesystem]\nread_only = [{ path = "~/.cargo", optional = true }]\n[limits]\ncpus = 1.5\n'
      ;;
    envfile)
      seed "$crate" "$target" plain 'export A=1\nB = two words # comment\nC=a#b\n'
      seed "$crate" "$target" quoted 'A="multi\\nline \\"q\\""\nB='"'"'lit\\n'"'"' # c\nC="spans\r\nlines"\n'
      seed "$crate" "$target" secrets 'GITHUB_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5\nDB=postgres://app:hunter2@db:5432/app\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n'
      ;;
    head)
      seed "$crate" "$target" connect 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'
      seed "$crate" "$target" absolute 'GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n'
      seed "$crate" "$target" chunked 'POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n'
      ;;
    socks)
      seed "$crate" "$target" greeting '\x05\x01\x00'
      seed "$crate" "$target" domain '\x05\x01\x00\x03\x0bexample.com\x01\xbb'
      seed "$crate" "$target" v4 '\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50'
      seed "$crate" "$target" v6 '\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb'
      ;;
    tls)
      # A TLS 1.3 ClientHello naming example.com.
      seed "$crate" "$target" client-hello '\x16\x03\x01\x00\x43\x01\x00\x00\x3f\x03\x03\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x00\x00\x02\x13\x01\x01\x00\x00\x14\x00\x00\x00\x10\x00\x0e\x00\x00\x0bexample.com'
      ;;
    dns)
      # A query for example.com A.
      seed "$crate" "$target" query '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01'
      ;;
    host)
      seed "$crate" "$target" name 'Example.COM.'
      seed "$crate" "$target" authority 'xn--bcher-kva.example:8443'
      seed "$crate" "$target" v6 '[::ffff:127.0.0.1]:443'
      seed "$crate" "$target" inet-aton '0x7f.0.0.01'
      ;;
    policy)
      seed "$crate" "$target" rules 'aexample.com\na*.example.org:8443\na[2001:db8::1]\ndevil.example.org\nd*:22\nc10.0.0.0/8\ncfd00::/8\nc::ffff:192.168.0.0/112\ntwww.example.org:8443\ntexample.com\nt10.1.2.3:443\nt0x7f.1\nt[::ffff:10.0.0.1]:80\n'
      ;;
    upstream)
      seed "$crate" "$target" https 'https://api.anthropic.com'
      seed "$crate" "$target" v6 'http://[::1]:8080/'
      seed "$crate" "$target" userinfo 'https://user:secret@host.example/'
      ;;
    *)
      ;;
  esac
}

# Both fuzz crates build into one target directory (the repository's, ignored by git): what they
# share (libFuzzer itself, serde, syn, …) is built once.
target_dir="$PWD/target/fuzz"
# Targets run side by side, one per CPU: each is single-threaded.
parallel="$(nproc 2>/dev/null || echo 1)"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

# run_target CRATE TARGET: fuzzes one target for $seconds; its output goes to $logs/CRATE.TARGET.log
# and its outcome (ok or crash) to $logs/CRATE.TARGET.status.
run_target() {
  local crate=$1 target=$2 log="$logs/$1.$2.log" outcome=ok
  (cd "crates/$crate" && cargo +nightly fuzz run --target-dir "$target_dir" "$target" -- \
    -max_total_time="$seconds" -timeout="$per_input_timeout" -print_final_stats=1) >"$log" 2>&1 \
    || outcome=crash
  echo "$outcome" >"$logs/$crate.$target.status"
}

start=$(date +%s)
runs=()
for crate in corral-core corral-net; do
  (cd "crates/$crate" && cargo +nightly fuzz build --target-dir "$target_dir")
  for target in $(cd "crates/$crate" && cargo +nightly fuzz list); do
    seed_corpus "$crate" "$target"
    regressions=("crates/$crate/fuzz/regressions/$target"/*)
    if [ "${#regressions[@]}" -gt 0 ]; then
      cp "${regressions[@]}" "crates/$crate/fuzz/corpus/$target/"
    fi
    runs+=("$crate.$target")
  done
done
for run in "${runs[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do
    wait -n || true
  done
  echo "fuzz: ${run%%.*} ${run#*.} for ${seconds}s"
  run_target "${run%%.*}" "${run#*.}" &
done
wait

failed=0
for run in "${runs[@]}"; do
  crate=${run%%.*} target=${run#*.} log="$logs/$run.log"
  if [ "$(cat "$logs/$run.status" 2>/dev/null)" != ok ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $crate $target FAILED; the input is under crates/$crate/fuzz/artifacts/$target/" >&2
    echo "(replay: cd crates/$crate && cargo +nightly fuzz run $target fuzz/artifacts/$target/<file>)" >&2
    failed=1
    continue
  fi
  count=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  printf '  %-12s %-10s %12s runs %8s exec/s\n' "$crate" "$target" "${count:-?}" "${rate:-?}"
done
if [ "$failed" != 0 ]; then
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash ($(($(date +%s) - start))s in all, builds included)"
