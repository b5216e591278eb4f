#!/usr/bin/env bash
# One GPU call (2026-11-27): the one-matmul GEGLU kernel (models/fused_geglu.py) in two forms -- persistent
# (one program per SM, one flat loop over (tile, k) steps so the next tile's loads overlap an epilogue) and
# one program per tile (run 84's) -- with each tile of `fused_geglu.TILES` at SD 1.5's four levels
# (bench_geglu_tiles.py); then, when a (form, tile) beats cuBLAS + the gate kernel over a call
# (pick_geglu_tile.py), guided 16-frame sampling (25 steps, CUDA graphs) with it against the GEGLU fusion off,
# two processes of each, compiling side by side and timing in turn.
# Record of the call as run: fused_geglu.py then held both forms (`launch(..., persistent)`), five-number tiles
# without programs per SM and libdevice's erf; bench_geglu_tiles.py looped over both forms and pick_geglu_tile.py
# printed "form,tile" for the old --geglu-tile. The module was removed after run 86 (bench/PERFORMANCE_NOTES.md).
#   run: bash bench/calls/run85-geglu-tiles.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 240 python3 bench/bench_geglu_tiles.py --json "$OUT/run85-tiles.json" > /tmp/run85-tiles.out 2>&1
echo "tiles exit $? $(date -u +%T)" >> "$OUT/log.txt"
grep -v Warning /tmp/run85-tiles.out | grep -v "^W1127" | cut -c1-400 >> "$OUT/log.txt"
TILE=$(python3 bench/pick_geglu_tile.py "$OUT/run85-tiles.json" 2>> "$OUT/log.txt")
echo "picked tile: '$TILE'" >> "$OUT/log.txt"
if [ -n "$TILE" ]; then
  S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
  mkdir -p /tmp/turns-run85-4
  bench_turns run85 all-a 330 4 $S --fusions all --geglu-tile "$TILE" &
  bench_turns run85 lg-a 330 4 $S --fusions linear-gelu &
  bench_turns run85 all-b 330 4 $S --fusions all --geglu-tile "$TILE" &
  bench_turns run85 lg-b 330 4 $S --fusions linear-gelu &
  wait
  bench_tails run85
fi
cd "$OUT" && tar czf run85-bundle.tgz run85-* && rm -f run85-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|tiles exit\|picked\|plain\|\"ms\"" | cut -c1-400
