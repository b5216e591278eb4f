"""A copy of a module tree that shares its weights: new module objects around the same parameters.

`inflate` wraps modules of the UNet it builds on (pseudo-3D convolutions, spatio-temporal transformers), which
the `enable_fast_*` calls may later re-class (`sdvideo/fast/`), and `VideoPipeline.enable_fast_inference`
re-classes its VAE's upsamplers. Done on
the caller's own modules, those changes would leave the caller's model expecting frames, or computing
through other code paths. `shared_parameter_copy` gives them a model of their own to change: every module
is a new object, while every parameter and buffer is the original's own object, so no weight memory is
copied and the two models see the same weights (training, loading or moving one moves the other's too).
"""

from __future__ import annotations

import copy
import itertools
from typing import TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)


def shared_parameter_copy(module: M) -> M:
    """`module`'s module tree copied, with its parameters and buffers shared (the same objects), not copied."""
    # deepcopy takes a memo entry as the object's copy: seeding it with the tensors themselves keeps them.
    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)
