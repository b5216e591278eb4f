#!/usr/bin/env bash
# The two noise priors side by side from one base, on a short device budget: the experiment's base, then video
# phases of --video-steps 800 with only the frame means shared (the recipe's prior) and with spatial frequencies
# <= 0.125 cycles/pixel shared, then bench/probe_flicker.py on each (colour, contrast, warping error, flicker per
# sampler and sampling prior) instead of the full eval. Carry .whl/core .whl/av .whl/clips; run again on the warm
# machine until both probes are back:  bash bench/calls/run106-priors-probe.sh [SECONDS]
set -u
limit=${1:-560}
start=$(date +%s)
left() { echo $(( limit - ($(date +%s) - start) )); }
source bench/device_setup.sh core av
mkdir -p runs
run_experiment() {  # NAME ARGS...
  local name=$1; shift
  PYTHONUNBUFFERED=1 timeout "$(left)" python3 bench/experiment.py --clips .whl/clips --video-steps 800 --no-control \
    --until "video phase" "$@" >> "/tmp/$name.out" 2>&1
  echo "[$name] exit $? at $(date -u +%T)" >> "/tmp/$name.out"
}
run_experiment means --out runs/means --resume --until "image phase"
if grep -q '"image phase"' runs/means/stages.json 2>/dev/null; then
  run_experiment means --out runs/means --resume &
  run_experiment lp125 --out runs/lp125 --from-base runs/means --noise-lowpass 0.125 &
  wait
fi
for name in means lp125; do
  if grep -q '"video phase"' "runs/$name/stages.json" 2>/dev/null && [ ! -f "runs/probe-$name.json" ]; then
    timeout $(( $(left) - 20 )) python3 bench/probe_flicker.py "runs/$name/run" --json "runs/probe-$name.json" \
      > "/tmp/probe-$name.out" 2>&1 &
  fi
done
wait
for f in /tmp/*.out; do
  tr '\r' '\n' < "$f" | grep -v -E 'it/s\]$|s/it\]$|^\s*$' > "$OUT/log-$(basename "$f" .out).txt"
done
cp --parents runs/probe-*.json runs/*/run/validation.csv runs/*/stages.json "$OUT/" 2>/dev/null
tail -n 8 "$OUT"/log-*.txt
