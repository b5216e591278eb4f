#!/usr/bin/env bash
# One GPU call (2026-11-26): guided 16-frame sampling (25 steps, CUDA graphs for all) side by side: sdvideo as
# shipped (compiled layers, the CFG pair, subpixel upsamplers in UNet and VAE) against AnimateDiff tuned and
# ModelScope, whose VAE decode keeps diffusers' upsampling (--upsample interpolate).
#   run: bash bench/calls/run75-peers-sampling-final.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs"
bench_turns run75 sdvideo 570 3 $S --models sdvideo --variants compiled-cl-pair &
bench_turns run75 animatediff 570 3 $S --models animatediff --variants frozen-bf16-compiled --upsample interpolate &
bench_turns run75 modelscope 570 3 $S --models modelscope --variants eager --upsample interpolate &
wait
bench_tails run75
grep -v "^W1126" "$OUT/log.txt" | grep "^\[\|Error" | cut -c1-1500
