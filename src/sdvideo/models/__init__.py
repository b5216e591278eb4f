"""Networks: the pseudo-3D video UNet, its temporal layers, size presets and the base-model loader."""

from .presets import PRESETS, preset, unet_config
from .video_unet import VideoUNet, VideoUNetOutput, inflate

__all__ = ["PRESETS", "VideoUNet", "VideoUNetOutput", "inflate", "preset", "unet_config"]
