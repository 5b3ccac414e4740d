#!/usr/bin/env bash
# Quick start, command 2: set up, build and run every test — the release
# build, the ASan+UBSan build, the CLI checks, and short fuzzing runs of the
# spec parser, the model server's predict body and the gateway's HTTP front.
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

echo "== fuzz the spec parser (${MERIDIAN_FUZZ_SECONDS:-30}s), the predict body and the gateway front (${MERIDIAN_FUZZ_SERVE_SECONDS:-20}s each) =="
scripts/build.sh fuzz
# fuzz TARGET SECONDS SEEDS: libFuzzer adds new inputs to the first (scratch)
# directory, so the committed seeds stay as they are.
fuzz() {
  local corpus
  corpus=$(mktemp -d)
  build-fuzz/fuzz/"$1" -max_total_time="$2" -max_len="${4:-4096}" \
    -rss_limit_mb=4096 -print_final_stats=1 "$corpus" "$3" > "$corpus.log" 2>&1 ||
    { tail -n 40 "$corpus.log"; echo "$1 found a crash"; exit 1; }
  tail -n 5 "$corpus.log"
  rm -f "$corpus.log"
  rm -rf "$corpus"
}
fuzz spec_fuzzer "${MERIDIAN_FUZZ_SECONDS:-30}" fuzz/corpus
fuzz predict_fuzzer "${MERIDIAN_FUZZ_SERVE_SECONDS:-20}" fuzz/corpus/predict_fuzzer
fuzz gateway_front_fuzzer "${MERIDIAN_FUZZ_SERVE_SECONDS:-20}" fuzz/corpus/gateway_front_fuzzer
fuzz rpc_validate_fuzzer "${MERIDIAN_RPC_FUZZ_SECONDS:-15}" fuzz/rpc-corpus 65536
echo "all tests passed"
