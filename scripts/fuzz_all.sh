#!/usr/bin/env bash
# Runs every fuzz target under AddressSanitizer for SECONDS of CPU time each (default 1200 =
# 20 min), one after the other, with the seeds of fuzz/seeds/, and prints a summary line per
# target. The budget is CPU time of the fuzzing process, not wall-clock time, so a run that is
# paused (kill -STOP, e.g. while a benchmark needs the cores) or slowed by a build still fuzzes
# for the full budget. Logs go to target/fuzz-logs/TARGET.log.
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
# Build every target once (cargo fuzz's defaults: release, debug assertions, ASan).
cargo +nightly fuzz build > ../target/fuzz-logs/build.log 2>&1 || {
    echo "fuzz build failed; see target/fuzz-logs/build.log"
    exit 1
}
bin_dir="target/x86_64-unknown-linux-gnu/release"
ticks=$(getconf CLK_TCK)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    start=$(date +%s)
    # -max_total_time is wall-clock; it is only a backstop (4x the budget). The CPU-time watch
    # below stops the run with SIGINT, on which libFuzzer prints its final statistics. Slow-unit
    # reports are wall-clock too, so a pause would write false "slow-unit" artifacts: only
    # units over 10 minutes are reported (-timeout, default 20 minutes, still catches hangs).
    "$bin_dir/$t" -artifact_prefix="artifacts/$t/" -max_total_time=$((secs * 4)) \
        -rss_limit_mb=4096 -report_slow_units=600 -print_final_stats=1 "corpus/$t" "seeds/$t" \
        > "../target/fuzz-logs/$t.log" 2>&1 &
    pid=$!
    cpu=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        # Fields 14 and 15 of /proc/PID/stat: user and system time in clock ticks.
        read -r -a stat < "/proc/$pid/stat" 2>/dev/null || break
        cpu=$(((stat[13] + stat[14]) / ticks))
        if [ "$cpu" -ge "$secs" ]; then
            kill -INT "$pid"
            break
        fi
    done
    wait "$pid"
    status=$?
    # 130 / 72 (SIGINT exit of libFuzzer) after the budget is the normal end.
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "../target/fuzz-logs/$t.log" | tail -1 | grep -o '[0-9]*$')
    corpus=$(ls "corpus/$t" | wc -l)
    crashes=$(find "artifacts/$t" -type f -newermt "@$start" | wc -l)
    echo "$t: exit $status, ${cpu}s CPU, $(($(date +%s) - start))s wall, ${runs:-?} runs, corpus $corpus, new artifacts $crashes"
done
