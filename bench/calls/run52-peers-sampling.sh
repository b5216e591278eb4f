#!/usr/bin/env bash
# One GPU call (2026-11-26): 16-frame guided sampling side by side with the peers after runs 49-51
# (sdvideo: compiled layers, CFG pair, rotary tables, the fused Triton temporal attention; AnimateDiff's
# UNetMotionModel: frozen bf16 weights, the same regional compile; ModelScope's UNet3DConditionModel:
# eager), plain calls and CUDA graphs (GraphedUNet) for all three; cuDNN benchmarking on for all.
#   run: bash bench/calls/run52-peers-sampling.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs"
bench_turns run52 sdvideo 570 3 $S --models sdvideo --variants compiled-cl-pair &
bench_turns run52 animatediff 570 3 $S --models animatediff --variants frozen-bf16-compiled &
bench_turns run52 modelscope 570 3 $S --models modelscope --variants eager &
wait
bench_tails run52
cat "$OUT/log.txt"
