"""sdvideo: turn a pretrained Stable Diffusion into a text-to-video model.

    base = sdvideo.load_base("path/to/stable-diffusion")   # diffusers folder or .ckpt/.safetensors
    video_unet = sdvideo.inflate(base.unet)                 # + temporal conv and attention, identity at init
    video_unet.freeze_spatial()                             # only the temporal layers train
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["VideoUNet", "inflate", "load_base", "BaseModel", "__version__"]


def __getattr__(name: str) -> Any:
    # The model pulls in torch and diffusers, the loader transformers: import them only when asked for,
    # so that `sdvideo --help` and light submodules load fast.
    if name in ("VideoUNet", "inflate"):
        from .models import video_unet

        return getattr(video_unet, name)
    if name in ("load_base", "BaseModel", "BaseModelError", "build_base"):
        from .models import base

        return getattr(base, name)
    raise AttributeError(name)
