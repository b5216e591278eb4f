#!/usr/bin/env bash
# One GPU call: every model and variant of bench_unet.py in its own process (a crash or a hang in
# one cannot take the others down), rows appended to $OUT/unet.jsonl.
#   bash bench/run_unet_suite.sh "sdvideo:eager,compiled" "animatediff:eager"
set -u
OUT=${OUT:-/tmp/bench}
mkdir -p "$OUT"
for spec in "$@"; do
  model=${spec%%:*}; variants=${spec#*:}; cases=${CASES:-2x16,2x5,1x64}
  for variant in ${variants//,/ }; do
    echo "=== $model $variant $(date -u +%H:%M:%S)"
    timeout "${PER_RUN_S:-300}" python3 bench/bench_unet.py --models "$model" --variants "$variant" --cases "$cases" \
      --steps 5 --warmup 3 ${SAMPLE:+--sample} --json "$OUT/unet-$model-$variant.json" 2>&1 | grep -v Warning | tail -n 12
  done
done
cat "$OUT"/unet-*.jsonl > "$OUT/unet.jsonl" 2>/dev/null
