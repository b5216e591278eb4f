#!/usr/bin/env bash
# One GPU call (2026-11-25, evening; code at commit f4d10b6, reverted after): the temporal layers' forms, per layer at SD 1.5's four map sizes:
# the 3-D convolution against its 2-D form and against a backward written as GEMMs; the compiled temporal
# transformer with SDPA against the fused short attention; kernel tables at 320 channels x 64 x 64.
#   run: bash bench/calls/run20-temporal-layer-forms.sh   (carry .whl/core)
source bench/device_setup.sh core
timeout "${LIMIT_S:-300}" python3 bench/bench_temporal_layers.py --compile --json "$OUT/run20-temporal-layers.json" \
  --profile "$OUT/run20-profile-320x64.txt" 2>&1 | grep -v Warning | grep -E '^\{|Error'
# Then the default compiled step (selective checkpointing, channels-last, layer regions), now with the fused short
# attention, at 2 x 16 with sampling; its SDPA form (`compiled-selective-cl-sdpa`) is run 21, same warm machine.
timeout "${LIMIT_S2:-330}" python3 bench/bench_unet.py --models sdvideo --cases 2x16 --sample --steps 8 --warmup 3 \
  --variants compiled-selective-cl --json "$OUT/run20.json" 2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:'
