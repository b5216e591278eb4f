#!/usr/bin/env bash
# One GPU call (2026-11-27): the persistent one-matmul GEGLU kernel (models/fused_geglu.py) with exact GELU from
# Abramowitz & Stegun's erf (run 85: libdevice's erf cost 0.15 of 0.66 ms at 64 x 64), each tile of
# `fused_geglu.TILES` (now with programs per SM) at SD 1.5's four levels, the other GELU forms on the best tile
# (bench_geglu_tiles.py); then, when a tile gains over a call (pick_geglu_tile.py: tile and the most input
# channels where it gains), guided 16-frame sampling (25 steps, CUDA graphs) with it against the GEGLU fusion
# off, two processes of each, compiling side by side and timing in turn.
# Record of the call as run: the code of commit "one-matmul GEGLU measured (runs 84-86)"; models/fused_geglu.py,
# bench_geglu_tiles.py, pick_geglu_tile.py and --geglu-tile were removed in the next commit (bench/PERFORMANCE_NOTES.md).
#   run: bash bench/calls/run86-geglu-erf-tiles.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 240 python3 bench/bench_geglu_tiles.py --json "$OUT/run86-tiles.json" > /tmp/run86-tiles.out 2>&1
echo "tiles exit $? $(date -u +%T)" >> "$OUT/log.txt"
grep -v Warning /tmp/run86-tiles.out | grep -v "^W1127" | cut -c1-400 >> "$OUT/log.txt"
TILE=$(python3 bench/pick_geglu_tile.py "$OUT/run86-tiles.json" 2>> "$OUT/log.txt")
echo "picked tile: '$TILE'" >> "$OUT/log.txt"
if [ -n "$TILE" ]; then
  S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
  mkdir -p /tmp/turns-run86-4
  bench_turns run86 all-a 330 4 $S --fusions all --geglu-tile "$TILE" &
  bench_turns run86 lg-a 330 4 $S --fusions linear-gelu &
  bench_turns run86 all-b 330 4 $S --fusions all --geglu-tile "$TILE" &
  bench_turns run86 lg-b 330 4 $S --fusions linear-gelu &
  wait
  bench_tails run86
fi
cd "$OUT" && tar czf run86-bundle.tgz run86-* && rm -f run86-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|tiles exit\|picked\|plain" | grep -v "\"ms\"" | cut -c1-600
