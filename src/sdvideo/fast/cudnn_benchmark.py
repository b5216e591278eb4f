"""Let cuDNN time its convolution algorithms and keep the fastest (`torch.backends.cudnn.benchmark`).

Each stage repeats the same shapes (a training run's batches, a sampling run's latents, the VAE's frame
batches), so timing the candidates once per shape pays for itself (BENCHMARKS.md), and the benchmarks in
bench/ use it too. A process-wide setting, not a model's: `train`, `sample`/`interpolate`/`eval` and `prepare`'s
VAE call `benchmark_cudnn_algorithms` for their device.
SDVIDEO_CUDNN_BENCHMARK=0 leaves the setting alone (cuDNN's heuristics then choose, as PyTorch does by default).
"""

from __future__ import annotations

import os

import torch

ENV = "SDVIDEO_CUDNN_BENCHMARK"


def benchmark_cudnn_algorithms(device: torch.device | str) -> bool:
    """Turn cuDNN's algorithm benchmarking on for work on a CUDA `device`; True if it is on now."""
    if torch.device(device).type != "cuda" or os.environ.get(ENV, "1") == "0":
        return False
    torch.backends.cudnn.benchmark = True
    return True
