#!/usr/bin/env bash
# Runs every fuzz target under AddressSanitizer for SECONDS each (default 1200 = 20 min), one
# after the other, with the seeds of fuzz/seeds/, and prints a summary line per target.
# Usage: scripts/fuzz_all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-1200}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(npy_reader npz_reader csv_reader safetensors_reader cli_args gram_api lmf_api mkl_fit)
fi
mkdir -p ../target/fuzz-logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 \
        > "../target/fuzz-logs/$t.log" 2>&1
    status=$?
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "../target/fuzz-logs/$t.log" | tail -1 | grep -o '[0-9]*$')
    corpus=$(ls "corpus/$t" | wc -l)
    echo "$t: exit $status, ${secs}s, ${runs:-?} runs, corpus $corpus"
done
