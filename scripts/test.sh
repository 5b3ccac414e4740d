#!/usr/bin/env bash
# Quick start, command 2: set up, build and run every test — the release
# build, the ASan+UBSan build, the CLI checks, and a short fuzzing run of the
# spec parser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== release build + tests =="
scripts/build.sh release
ctest --test-dir build --output-on-failure -j "$(nproc)"

echo "== ASan+UBSan build + tests =="
scripts/build.sh asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc)"

echo "== fuzz the spec parser (${MERIDIAN_FUZZ_SECONDS:-30}s) =="
scripts/build.sh fuzz
corpus=$(mktemp -d)
build-fuzz/fuzz/spec_fuzzer -max_total_time="${MERIDIAN_FUZZ_SECONDS:-30}" -max_len=4096 \
  -rss_limit_mb=4096 -print_final_stats=1 "$corpus" fuzz/corpus > "$corpus.log" 2>&1 ||
  { tail -n 40 "$corpus.log"; echo "fuzzer found a crash"; exit 1; }
tail -n 5 "$corpus.log"
rm -f "$corpus.log"
rm -rf "$corpus"

echo "== fuzz the RPC request validator (${MERIDIAN_RPC_FUZZ_SECONDS:-15}s) =="
corpus=$(mktemp -d)
build-fuzz/fuzz/rpc_validate_fuzzer -max_total_time="${MERIDIAN_RPC_FUZZ_SECONDS:-15}" \
  -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "$corpus" fuzz/rpc-corpus \
  > "$corpus.log" 2>&1 || { tail -n 40 "$corpus.log"; echo "fuzzer found a crash"; exit 1; }
tail -n 5 "$corpus.log"
rm -f "$corpus.log"
rm -rf "$corpus"
echo "all tests passed"
