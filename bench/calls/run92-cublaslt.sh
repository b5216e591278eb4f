#!/usr/bin/env bash
# One GPU call (2026-11-27): PyTorch's matmuls through cuBLASLt for all shapes (TORCH_BLAS_PREFER_CUBLASLT=1)
# against the default (cuBLAS, cuBLASLt where a bias epilogue runs): run 89 had the 1,280 -> 1,280 matmul at
# 16 x 16 at 0.113 ms without a bias and 0.075 ms with one. First the projection forms alone (bench_ff_forms.py,
# both ways); then guided 16-frame sampling (25 steps, CUDA graphs) both ways, two processes of each, compiling
# side by side and timing in turn.
#   run: bash bench/calls/run92-cublaslt.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
for blas in default lt; do
  if [ $blas = lt ]; then export TORCH_BLAS_PREFER_CUBLASLT=1; else unset TORCH_BLAS_PREFER_CUBLASLT; fi
  python3 -c "import torch; print('$blas', torch.backends.cuda.preferred_blas_library())" >> "$OUT/log.txt" 2>&1
  timeout 120 python3 bench/bench_ff_forms.py --json "$OUT/run92-ff-forms-$blas.json" > /tmp/run92-ff-$blas.out 2>&1
  echo "ff-forms $blas exit $? $(date -u +%T)" >> "$OUT/log.txt"
done
unset TORCH_BLAS_PREFER_CUBLASLT
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run92-4
bench_turns run92 default-a 400 4 $S &
TORCH_BLAS_PREFER_CUBLASLT=1 bench_turns run92 lt-a 400 4 $S &
bench_turns run92 default-b 400 4 $S &
TORCH_BLAS_PREFER_CUBLASLT=1 bench_turns run92 lt-b 400 4 $S &
wait
bench_tails run92
cd "$OUT" && tar czf run92-bundle.tgz run92-* && rm -f run92-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|ff-forms\|Blas\|blas\|default\|lt " | cut -c1-700
python3 - <<'PY'
import json, os
for blas in ("default", "lt"):
    path = os.path.join(os.environ["OUT"], f"run92-ff-forms-{blas}.json")
    if os.path.exists(path):
        d = json.load(open(path)); rows = d if isinstance(d, list) else d["rows"]
        for r in rows:
            print(blas, r["channels"], {k: round(v, 3) for k, v in r.items() if k.endswith("_ms")})
PY
