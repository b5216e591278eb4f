#!/usr/bin/env bash
# One GPU call (2026-11-26): where a guided sampling call's time goes now (subpixel upsamplers shipped), to choose
# the next fusion: every region timed alone and the 64 x 64 resnets' and a 64 x 64 transformer's kernels
# (bench_regions.py), the whole denoising call's kernels with their launching operators (bench_unet.py
# --profile-sampling), and projection / feed-forward forms alone (bench_ff_forms.py). Three processes compile
# side by side and time in turn.
#   run: bash bench/calls/run76-profile-sampling-call.sh   (carry .whl/core)
source bench/device_setup.sh core
rm -rf /tmp/turns-run76*; echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--turns /tmp/turns-run76-3 --processes 3"  # the folder bench_turns uses for run76, 3 processes
(timeout 560 python3 bench/bench_ff_forms.py $T --json "$OUT/run76-ff-forms.json" > /tmp/run76-ff.out 2>&1) &
(timeout 560 python3 bench/bench_regions.py $T --json "$OUT/run76-regions.json" \
  --profile "(down_blocks.0|up_blocks.3).resnets.0$|up_blocks.3.attentions.0$" \
  --profile-out "$OUT/run76-profile-regions.txt" > /tmp/run76-regions.out 2>&1) &
bench_turns run76 samp 560 3 --cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair \
  --profile-sampling "$OUT/run76-profile-sampling.txt" &
wait
for f in /tmp/run76-*.out; do echo "== $f"; grep -v Warning "$f" | grep -v "^W1126" | tail -n 25 | cut -c1-1200; done >> "$OUT/log.txt"
cd "$OUT" && tar czf run76-bundle.tgz run76-* log.txt && cat log.txt | cut -c1-1500
