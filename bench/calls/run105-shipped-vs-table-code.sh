#!/usr/bin/env bash
# One GPU call (issue #27): sdvideo as shipped against ea618bd, the code that measured the performance table (runs 74
# and 101), side by side on one card, so the comparison holds on whichever card comes. Two processes per tree compile
# side by side and time in turns: the 2 x 16 training step (light-1+2, block regions, 8-bit AdamW) and guided
# 16-frame sampling (`compiled-cl-pair`, CUDA graphs); about 2 x 22 + 2 x 8 GiB.
#   here first:  mkdir -p runs/baseline && git archive ea618bd src bench/bench_unet.py bench/gpu_turns.py \
#                  bench/gpu_timing.py | tar x -C runs/baseline
#   run: [LIMIT=500] [SAMPLE_ONLY=1 | TRAIN_ONLY=1] bash bench/calls/run105-shipped-vs-table-code.sh   (carry
#        .whl/core and runs/baseline; SAMPLE_ONLY=1 times sampling alone, TRAIN_ONLY=1 the training step alone)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
limit=${LIMIT:-500}
train=(--cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks)
sample=(--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair)
n=4; if [ -n "${SAMPLE_ONLY:-}${TRAIN_ONLY:-}" ]; then n=2; fi
# bench_unet.py puts its own tree's src first on sys.path, so those run in runs/baseline import the table code's sdvideo.
if [ -z "${TRAIN_ONLY:-}" ]; then
  bench_turns run105 shipped-sample "$limit" $n "${sample[@]}" &
  (cd runs/baseline && bench_turns run105 table-code-sample "$limit" $n "${sample[@]}") &
fi
if [ -z "${SAMPLE_ONLY:-}" ]; then
  bench_turns run105 shipped-train "$limit" $n "${train[@]}" &
  (cd runs/baseline && bench_turns run105 table-code-train "$limit" $n "${train[@]}") &
fi
wait
bench_tails run105
grep -v "^W[0-9]\{4\} " "$OUT/log.txt" | grep "^\[\|Error" | cut -c1-1500
