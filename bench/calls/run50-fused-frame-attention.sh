#!/usr/bin/env bash
# One GPU call (2026-11-26): the fused Triton temporal attention (models/fused_frame_attention.py) against
# the compiled tensor ops it replaces: the attention and the temporal transformer alone at each level
# (bench/bench_fused_frame_attention.py), guided sampling (compiled layers, CFG pair, CUDA graphs) and
# the 2 x 16 step under 22 GiB (selective-2, block regions), each with and without the kernel.
#   run: bash bench/calls/run50-fused-frame-attention.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=5
S="--cases none --sample --sample-graphs --models sdvideo"
T="--cases 2x16 --models sdvideo"
bench_turns run50 samp-fused 570 $N $S --variants compiled-cl-pair &
bench_turns run50 samp-unfused 570 $N $S --variants compiled-cl-pair-unfused &
bench_turns run50 train-fused 570 $N $T --variants compiled-selective-2-cl-blocks &
bench_turns run50 train-unfused 570 $N $T --variants compiled-selective-2-cl-blocks-unfused &
( timeout 570 python3 bench/bench_fused_frame_attention.py --turns /tmp/turns-run50-$N --processes $N \
    --json "$OUT/run50-attention.json" > /tmp/run50-attention.out 2>&1; [ $? = 124 ] && touch /tmp/turns-run50-$N/ready-killed-attention ) &
wait
bench_tails run50
cat "$OUT/log.txt"
