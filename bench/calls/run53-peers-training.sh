#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 training step side by side with AnimateDiff after runs 49-51
# (sdvideo: selective-2 checkpointing, block regions, the fused Triton temporal attention; AnimateDiff's
# UNetMotionModel: frozen bf16 weights and regional compile, its tuned setting), and sdvideo at 2 x 5.
#   run: bash bench/calls/run53-peers-training.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run53 sdvideo 570 3 --cases 2x16 --models sdvideo --variants compiled-selective-2-cl-blocks &
bench_turns run53 sdvideo-2x5 570 3 --cases 2x5 --models sdvideo --variants compiled-selective-2-cl-blocks &
bench_turns run53 animatediff 570 3 --cases 2x16 --models animatediff --variants frozen-bf16-compiled &
wait
bench_tails run53
cat "$OUT/log.txt"
