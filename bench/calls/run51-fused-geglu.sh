#!/usr/bin/env bash
# One GPU call (2026-11-26), at commit d663d9d (the fused GEGLU, its bench script and variant were removed after it): GEGLU as one fused Triton matmul for inference (models/fused_geglu.py): the
# feed-forward's first matmul alone at each level (bench/bench_fused_geglu.py) and guided sampling with and
# without it (compiled layers, CFG pair, CUDA graphs, the fused temporal attention in both); and the 2 x 16
# step without checkpointing (block regions) with the fused temporal attention.
#   run: bash bench/calls/run51-fused-geglu.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=4
S="--cases none --sample --sample-graphs --models sdvideo"
bench_turns run51 samp-fused 570 $N $S --variants compiled-cl-pair &
bench_turns run51 samp-unfused-geglu 570 $N $S --variants compiled-cl-pair-unfused-geglu &
bench_turns run51 train-none-blocks 570 $N --cases 2x16 --models sdvideo --variants compiled-cl-blocks &
( timeout 570 python3 bench/bench_fused_geglu.py --turns /tmp/turns-run51-$N --processes $N \
    --json "$OUT/run51-geglu.json" > /tmp/run51-geglu.out 2>&1; [ $? = 124 ] && touch /tmp/turns-run51-$N/ready-killed-geglu ) &
wait
bench_tails run51
cat "$OUT/log.txt"
