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
