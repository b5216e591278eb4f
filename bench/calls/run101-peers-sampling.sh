#!/usr/bin/env bash
# One GPU call (2026-11-27): guided 16-frame sampling (25 steps, CUDA graphs for all) side by side: sdvideo as
# shipped (compiled layers, the CFG pair, subpixel upsamplers in UNet and VAE, the inference fusions of runs
# 76-98) against AnimateDiff tuned and ModelScope, whose VAE decode keeps diffusers' upsampling (--upsample
# interpolate).
#   run: bash bench/calls/run101-peers-sampling.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs"
bench_turns run101 sdvideo 500 3 $S --models sdvideo --variants compiled-cl-pair &
bench_turns run101 animatediff 500 3 $S --models animatediff --variants frozen-bf16-compiled --upsample interpolate &
bench_turns run101 modelscope 500 3 $S --models modelscope --variants eager --upsample interpolate &
wait
bench_tails run101
cd "$OUT" && tar czf run101-bundle.tgz run101-*.json* && rm -f run101-*.jsonl run101-*.json && cd - > /dev/null
grep -v "^W1127" "$OUT/log.txt" | grep "^\[\|Error" | cut -c1-1500
