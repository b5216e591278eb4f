#!/usr/bin/env bash
# `make experiment` on the GPU machine of the device tool, in calls of at most 10 minutes.
# Here first: bash bench/fetch_device_wheels.sh (or at least its core, av and clips groups); then each call:
#   [EXPERIMENT_ARGS="--video-steps 2400"] [VARIANTS="name:share:lowpass[:embedding[:steps[:args]]] ..."] \
#     [BASES="name:args ..."] [NO_CONTROL=1] \
#     bash bench/gpu_experiment.sh [SECONDS]
# (carry .whl/core, .whl/av and .whl/clips; run it again on the warm machine until it says done). After the image
# phase, the experiment (runs/experiment) and each variant of its video phase with another noise prior (runs/<name>,
# same base and caches, no capacity control; lowpass -1: none; embedding 0/1: whether temporal attention reads the
# time embedding; steps: the video phase's; args: more experiment.py options, commas for spaces, e.g.
# "snr5:0:0:1:1600:--min-snr-gamma,5") train and evaluate side by side on the one GPU. BASES="name:args ..." runs
# whole experiments beside it from the start, each with its own data and image model and no capacity control (args as
# above, e.g. "scenes720:--train-scenes,720 longbase:--image-steps,3000"). NO_CONTROL=1 skips the capacity control.
# Once they are done, bench/probe_flicker.py samples every run once, with FreeInit and with DDIM's per-step noise
# (samplers-<name>.json), then it and bench/probe_long_samples.py sample the experiment's run several ways
# (NO_PROBES=1: none of these).
# What comes back, under $OUT: log-*.txt, samplers-*.json, probe.json, long.json, exp.tgz.part-* (reports, curves,
# metrics, sample arrays; no weights), which `cat exp.tgz.part-* | tar xzf -` joins here.
set -u
limit=${1:-560}
start=$(date +%s)
left() { echo $(( limit - ($(date +%s) - start) )); }
source bench/device_setup.sh core av
mkdir -p runs
run_experiment() {  # NAME ARGS...: one experiment.py process, its log in /tmp/NAME.out
  local name=$1; shift
  PYTHONUNBUFFERED=1 timeout "$(left)" python3 bench/experiment.py --clips .whl/clips "$@" >> "/tmp/$name.out" 2>&1
  echo "[$name] exit $? at $(date -u +%T)" >> "/tmp/$name.out"
}
for other in ${BASES:-}; do  # whole experiments with their own data and image model, side by side with the main one
  IFS=: read -r name args <<< "$other"
  run_experiment "$name" --out "runs/$name" --resume --no-control ${args//,/ } &
done
run_experiment experiment --out runs/experiment --resume ${EXPERIMENT_ARGS:-} --until "image phase"
if grep -q '"image phase"' runs/experiment/stages.json 2>/dev/null; then
  run_experiment experiment --out runs/experiment --resume ${EXPERIMENT_ARGS:-} ${NO_CONTROL:+--no-control} &
  names="experiment"
  for variant in ${VARIANTS:-}; do
    IFS=: read -r name share lowpass embedding steps args <<< "$variant"
    names="$names $name"
    run_experiment "$name" --out "runs/$name" --from-base runs/experiment --no-control --noise-share "$share" \
      --noise-lowpass "$lowpass" ${embedding:+--temporal-embedding "$embedding"} ${steps:+--video-steps "$steps"} \
      ${args//,/ } &
  done
fi
wait  # the video phases, and the BASES also when the main image phase did not finish in this call
if [ -z "${NO_PROBES:-}" ] && [ "$(left)" -gt 60 ]; then  # each finished run sampled a few ways, in parallel
  for dir in runs/*/; do
    name=$(basename "$dir")
    if [ -f "$dir/metrics.json" ] && [ ! -f "runs/samplers-$name.json" ]; then
      timeout $(( $(left) - 25 )) python3 bench/probe_flicker.py "$dir/run" --only eval FreeInit DDIM "DPM++ SDE" \
        --json "runs/samplers-$name.json" > "/tmp/samplers-$name.out" 2>&1 &
    fi
  done
  wait
  cp runs/samplers-*.json "$OUT/" 2>/dev/null
fi
if [ -z "${NO_PROBES:-}" ] && [ -f runs/experiment/metrics.json ] && [ ! -f runs/probe.json ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 25 )) python3 bench/probe_flicker.py runs/experiment/run --json runs/probe.json \
    > /tmp/probe.out 2>&1
  cp runs/probe.json "$OUT/" 2>/dev/null
fi
if [ -z "${NO_PROBES:-}" ] && [ -f runs/experiment/metrics.json ] && [ ! -f runs/long.json ] && [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 25 )) python3 bench/probe_long_samples.py runs/experiment/run --videos runs/experiment/unseen \
    --json runs/long.json > /tmp/long.out 2>&1
  cp runs/long.json "$OUT/" 2>/dev/null
fi
for f in /tmp/*.out; do
  tr '\r' '\n' < "$f" | grep -v -E 'it/s\]$|s/it\]$|^\s*$' > "$OUT/log-$(basename "$f" .out).txt"
done
tar czf - -C runs --exclude='checkpoints' --exclude='cache' --exclude='cache-unseen' --exclude='videos' \
  --exclude='unseen' --exclude='base' --exclude='*.safetensors' --exclude='logs' --exclude='bf16-checked' . \
  | split -b 15M - "$OUT/exp.tgz.part-"  # the device tool returns files of at most 16 MiB
tail -n 12 "$OUT"/log-*.txt
ls -la "$OUT"
