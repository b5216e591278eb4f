"""CUDA caching-allocator settings for training: expandable segments unless the user chose otherwise.

Long clips allocate activations of many sizes; the default allocator carves them out of fixed
segments and, near the card's limit, fails on fragmentation with a sixth of the memory unallocated.
On an H100 capped at 24 GiB (SD 1.5, 512 px, full checkpointing, batch 1) expandable segments
train about a fifth more frames than the default allocator (BENCHMARKS.md).
"""

from __future__ import annotations

import os

import torch

SETTING = "expandable_segments:True"


def prefer_expandable_segments() -> bool:
    """Set PYTORCH_CUDA_ALLOC_CONF to expandable segments before CUDA starts; True if it was set here.

    Leaves a PYTORCH_CUDA_ALLOC_CONF the user set alone, and does nothing once CUDA is initialised
    (the allocator reads the variable once, at start).
    """
    if "PYTORCH_CUDA_ALLOC_CONF" in os.environ or torch.cuda.is_initialized():
        return False
    os.environ["PYTORCH_CUDA_ALLOC_CONF"] = SETTING
    return True
