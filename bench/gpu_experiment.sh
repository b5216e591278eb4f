#!/usr/bin/env bash
# `make experiment` on the GPU machine of the device tool, in calls of at most 10 minutes.
# Here first: bash bench/fetch_device_wheels.sh (or at least its core, av and clips groups); then each call:
#   bash bench/gpu_experiment.sh [SECONDS]    (carry .whl; run it again on the warm machine until it says done)
# The first call also checks the bf16 training paths against fp32 (bench/check_bf16_training.py).
# What comes back, under $OUT: log.txt, bf16.json/txt, exp.tgz.part-* (reports, curves, metrics, sample arrays; no
# weights), which `cat exp.tgz.part-* | tar xzf -` joins here.
set -u
limit=${1:-480}
source bench/device_setup.sh core av
mkdir -p runs
if [ ! -f runs/bf16-checked ]; then
  timeout 150 python3 bench/check_bf16_training.py --json "$OUT/bf16.json" > "$OUT/bf16.txt" 2>&1
  echo "bf16 check exit $?" >> "$OUT/bf16.txt"
  touch runs/bf16-checked
fi
PYTHONUNBUFFERED=1 timeout "$limit" python3 bench/experiment.py --out runs/experiment --resume --clips .whl/clips \
  > /tmp/experiment.out 2>&1
echo "experiment exit $?" >> /tmp/experiment.out
tr '\r' '\n' < /tmp/experiment.out | grep -v -E 'it/s\]$|s/it\]$|^\s*$' > "$OUT/log.txt"
tar czf - -C runs --exclude='checkpoints' --exclude='cache' --exclude='cache-unseen' --exclude='videos' \
  --exclude='unseen' --exclude='base' --exclude='*.safetensors' --exclude='logs' experiment \
  | split -b 15M - "$OUT/exp.tgz.part-"  # the device tool returns files of at most 16 MiB
tail -n 25 "$OUT/log.txt"
ls -la "$OUT"
