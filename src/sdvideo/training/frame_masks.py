"""Training-time frame masks for masked-frame conditioning (`sdvideo train --task ...`).

Each training clip gets a set of *known* frames; the UNet sees their clean latents and a mask as
extra input channels (`models/frame_conditioning.py`) and learns to denoise the whole clip, i.e. to
fill the unknown frames consistently with the known ones:

- interpolate: every 2nd or every 4th frame known, or only the first and last (Make-A-Video's
  frame interpolation network);
- extend: the first n frames known (1 <= n < frames): continuing a video;
- image2video: frame 0 known: animating a still;
- mixed: one of the above or none, drawn per clip (a single model for every mode, that still
  samples from text alone);
- none: nothing known (plain text-to-video; the model needs no condition channels).

At least one frame of a clip is always unknown.
"""

from __future__ import annotations

import torch

from ..choices import TASKS
from ..models.frame_conditioning import pack_condition

_MIXED = ("interpolate", "extend", "image2video", "none")
_INTERPOLATION = ("every2", "every4", "ends")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown --task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def condition_channels_for(task: str, latent_channels: int = 4) -> int:
    """`VideoUNet(condition_channels=...)` for a task: latents + 1 mask channel, or 0 for "none"."""
    return 0 if check_task(task) == "none" else latent_channels + 1


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high) drawn from `generator` (on its own device)."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, high, (1,), generator=generator, device=device).item())


def known_frames(task: str, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(frames,) bool: which frames of one clip are known for `task`."""
    check_task(task)
    if task == "mixed":
        task = _MIXED[_randint(len(_MIXED), generator)]
    known = torch.zeros(frames, dtype=torch.bool)
    index = torch.arange(frames)
    if task == "interpolate":
        kind = _INTERPOLATION[_randint(len(_INTERPOLATION), generator)]
        if kind == "ends":
            known[0] = known[-1] = True
        else:
            known = index % (2 if kind == "every2" else 4) == 0
    elif task == "extend":
        known[: 1 + _randint(max(frames - 1, 1), generator)] = True
    elif task == "image2video":
        known[0] = True
    if frames > 1 and bool(known.all()):
        known[-1] = False  # always leave something to generate
    if frames == 1:
        known[:] = False
    return known


def make_frame_condition(latents: torch.Tensor, task: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The UNet's conditioning input for a training batch.

    latents: (b, c, f, h, w) clean latents (already scaled by the VAE's factor). Returns
    (b, c + 1, f, h, w): the latents of each clip's known frames (zeros elsewhere) and a last mask
    channel (1 known, 0 unknown), drawn independently per clip. Task "none" gives all zeros.
    """
    b, _, f, _, _ = latents.shape
    known = torch.stack([known_frames(task, f, generator) for _ in range(b)])  # (b, f)
    return pack_condition(latents, known)
