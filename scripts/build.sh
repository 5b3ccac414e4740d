#!/usr/bin/env bash
# Configures and builds one configuration. Usage: scripts/build.sh [release|asan|fuzz]
#   release  build/        RelWithDebInfo, the `build/meridian` binary and tests
#   asan     build-asan/   AddressSanitizer + UndefinedBehaviorSanitizer, tests
#   fuzz     build-fuzz/   clang + libFuzzer targets
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-release}"
targets=()
jobs="${MERIDIAN_JOBS:-$(nproc)}"
case "$config" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DMERIDIAN_SANITIZE=ON) ;;
  fuzz) dir=build-fuzz; targets=(--target spec_fuzzer --target rpc_validate_fuzzer --target predict_fuzzer
                                 --target gateway_front_fuzzer)
        flags=(-DCMAKE_BUILD_TYPE=Debug -DMERIDIAN_FUZZ=ON -DMERIDIAN_TESTS=OFF
               -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "usage: $0 [release|asan|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs" "${targets[@]}"
