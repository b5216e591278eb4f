#!/usr/bin/env bash
# One GPU call (2026-11-26): guided 16-frame sampling (25 steps, CUDA graphs). Run 77's skip-concat was slower (its
# split 1 x 1 shortcut ran as cuDNN convolutions over strided weight halves); here the shortcut is two matmuls over
# the channels-last maps. Five processes compile side by side and time in turn: no fusion, the linear + GELU
# epilogue alone, skip-concat alone (concatenation pointwise, and as inductor's buffer), and both with diffusers'
# fused q/k/v projections.
# Record of the call as run: skip-concat (its models/skip_concat.py and --fusions names) was measured and removed
# after run 81 (bench/PERFORMANCE_NOTES.md); bench_unet.py's --fusions now knows linear-gelu only.
#   run: bash bench/calls/run78-skip-concat-forms-qkv.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run78 none 570 5 $S --fusions none &
bench_turns run78 linear-gelu 570 5 $S --fusions linear-gelu &
bench_turns run78 skip-concat 570 5 $S --fusions skip-concat &
bench_turns run78 skip-concat-buffer 570 5 $S --fusions skip-concat-buffer &
bench_turns run78 all-qkv 570 5 $S --fusions skip-concat,linear-gelu,qkv &
wait
bench_tails run78
cd "$OUT" && tar czf run78-bundle.tgz run78-* && rm -f run78-*.json run78-*.jsonl
grep -v "^W1126" log.txt | grep "^\[\|Error" | cut -c1-1500
