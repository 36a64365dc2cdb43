#!/usr/bin/env bash
# Run the libFuzzer targets for a bounded time (not part of CI).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
build=build-fuzz
CC=clang cmake -S . -B "$build" -DCSLIM_FUZZ=ON -DCSLIM_BUILD_TESTS=OFF -DCSLIM_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" >/dev/null
cmake --build "$build" -j >/dev/null
for t in safetensors config tokenizer tokenizer_json image recipe codec; do
  work=$build/corpus-$t
  mkdir -p "$work"
  echo "== fuzz_$t for ${secs}s"
  "$build/fuzz/fuzz_$t" "$work" "fuzz/corpus/$t" -max_total_time="$secs" -max_len=65536 \
    -print_final_stats=1 2>&1 | tail -n 12
done
