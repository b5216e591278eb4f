#!/usr/bin/env bash
# One GPU call (2026-11-26): 16-frame guided sampling side by side with the peers, after runs 45-46
# (sdvideo: compiled layers, CFG pair, rotary tables per call; AnimateDiff's UNetMotionModel: frozen bf16
# weights, the same regional compile; ModelScope's UNet3DConditionModel: eager), each through plain calls
# and CUDA graphs (GraphedUNet works with any UNet call).
#   run: bash bench/calls/run48-sampling-peers.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs"
bench_turns run48 sdvideo 560 3 $S --models sdvideo --variants compiled-cl-pair &
bench_turns run48 animatediff 560 3 $S --models animatediff --variants frozen-bf16-compiled &
bench_turns run48 modelscope 560 3 $S --models modelscope --variants eager &
wait
bench_tails run48
cat "$OUT/log.txt"
