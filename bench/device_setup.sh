#!/usr/bin/env bash
# Source on the GPU machine: installs the carried wheels (.whl/<group>) the image lacks, sets PYTHONPATH.
#   source bench/device_setup.sh core av
set -e
rm -rf /tmp/site  # a warm machine keeps the last call's install: start clean
for group in "$@"; do
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/"$group"/*.whl
done
export PYTHONPATH=/tmp/site:$PWD/src
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, torch.cuda.get_device_name())"
set +e

# bench_turns RUN LABEL LIMIT PROCESSES FLAGS...: one bench_unet.py process of a call whose PROCESSES processes
# compile side by side and time in turn (gpu_turns.py); rows to $OUT/RUN-LABEL.json(l), labelled lines to $OUT/log.txt,
# everything it printed to /tmp/RUN-LABEL.out (`bench_tails RUN` appends their last lines to the log).
bench_turns() {
  local run=$1 label=$2 limit=$3 processes=$4; shift 4
  timeout "$limit" python3 bench/bench_unet.py --turns "/tmp/turns-$run-$processes" --processes "$processes" \
    --json "$OUT/$run-$label.json" "$@" 2>&1 | tee "/tmp/$run-$label.out" | grep -v Warning | grep -E '^\{|Error|GPU:' \
    | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
  # Killed by the timeout (perhaps before the barrier, where it never arrived): count it, so the others still time.
  if [ "${PIPESTATUS[0]}" = 124 ]; then touch "/tmp/turns-$run-$processes/ready-killed-$label"; fi
}
bench_tails() {
  for f in /tmp/"$1"-*.out; do echo "== $f (last lines)"; grep -v Warning "$f" | tail -n 15; done >> "$OUT/log.txt"
}
