#!/usr/bin/env bash
# One GPU call (2026-12-06, issues #29 and #27): run 102's three measurements (sdvideo's AnimateDiff design, the
# same with LoRA rank 8, diffusers' UNetMotionModel tuned as in run 74) and run 74's sdvideo as shipped (the
# pseudo-3D layers, light-1+2), all at 2 x 16, 512 px, 8-bit AdamW, compiled side by side and timed in turns,
# which needs one card's memory for the four compiling peaks (about 27 + 9 + 43 + 22 GiB): an H200. On a
# smaller card it runs run 102 (two phases) instead.
#   run: bash bench/calls/run103-animatediff-design-h200.sh   (carry .whl/core)
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
if [ "${total_mib:-0}" -lt 120000 ]; then exec bash bench/calls/run102-animatediff-design.sh; fi
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--cases 2x16 --optimizer adamw8bit"
limit=${LIMIT:-480}
bench_turns run103 sdvideo "$limit" 4 $T --models sdvideo --variants compiled-light-1+2-cl-blocks &
bench_turns run103 sdvideo-animatediff "$limit" 4 $T --models sdvideo-animatediff \
  --variants compiled-ckpt-temporal-cl-blocks &
bench_turns run103 sdvideo-animatediff-lora8 "$limit" 4 $T --models sdvideo-animatediff --lora-rank 8 \
  --variants compiled-ckpt-full-cl-blocks &
bench_turns run103 animatediff "$limit" 4 $T --models animatediff --variants frozen-bf16-compiled &
wait
bench_tails run103
grep -v "^W[0-9]\{4\} " "$OUT/log.txt" | grep "^\[\|Error\|phase" | cut -c1-1500
