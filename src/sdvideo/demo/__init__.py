"""Demo- and experiment-only code, kept out of the product packages.

There are no Stable Diffusion weights to start from in `sdvideo demo` (`run.py`) or in the experiment
(`bench/experiment.py`), so they make their own stand-ins for pretrained SD: `autoencoder.py` fits a
small `AutoencoderKL` (for SD's VAE) and `image_phase.py` trains the 2-D UNet from scratch on single
frames (for SD's image UNet). `driving_scene.py` renders procedural driving scenes with known forward
camera motion: the experiment's data, and the reference (and `CAPTION`) of the eval's ego-motion check.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_demo"]


def __getattr__(name: str) -> Any:
    # run.py pulls in torch, diffusers and the trainer: import it only when asked for, so that the eval's
    # `from ..demo.driving_scene import ...` stays light.
    if name == "run_demo":
        from .run import run_demo

        return run_demo
    raise AttributeError(name)
