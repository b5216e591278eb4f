"""Faster forms of sdvideo's networks, each switched on by an explicit call (diffusers' `enable_*` style).

A `VideoUNet` as constructed, inflated or loaded runs the network its model file shows: diffusers' and torch's
own modules around sdvideo's temporal layers, no class switched and no hook installed. These calls switch in
faster forms of the same layers, which compute the same results up to rounding:

    video_unet.enable_fast_training()    # training (and sampling): the paths in TRAINING_PATHS
    video_unet.enable_fast_inference()   # sampling: the paths in INFERENCE_PATHS
    pipe.enable_fast_inference()         # VideoPipeline: its UNet's, and its VAE decoder's upsamplers

`sdvideo train` calls the first, `sdvideo sample`/`interpolate`/`eval` (and `--compile`) the third. Call them
before `compile_regions`: a compiled region keeps the forms it was traced with. Each path is documented
once, in its module:

| path (name for `paths=`) | module | serves |
|---|---|---|
| lean-convs: frozen convolutions keep no activation for backward | `models/lean_conv.py` | training memory |
| subpixel-upsample: nearest 2x + 3 x 3 conv as four 2 x 2 convs (UNet; VAE via the pipeline) | `fast/subpixel_upsample.py` | training, sampling |
| fused-frame-attention: temporal attention as one Triton kernel each way | `models/fused_frame_attention.py` | training, sampling |
| linear-gelu: the temporal feed-forward's first Linear + GELU as one cuBLASLt matmul | `fast/fused_linear_gelu.py` | sampling |
| bias-after-matmul: transformer Linears' biases added in the next fused kernel (compiled) | `fast/bias_after_matmul.py` | sampling |
| channel-stats-group-norm: GroupNorm from per-channel statistics (compiled, channels-last) | `fast/channel_stats_group_norm.py` | sampling |
| frame-major-tokens: temporal attention on channels-last maps in the map's own order | `models/temporal_attention.py` | sampling |
| guidance-pair: classifier-free guidance's halves share the layers before the text | `fast/guidance_pair.py` | guided sampling |

Process-wide, not a model's: cuDNN's algorithm benchmarking (`fast/cudnn_benchmark.py`). Part of compiling
rather than a switch: temporal attention over few frames as tensor ops inside compiled regions
(`temporal_attention.frame_attention`). Measured gains of each are in BENCHMARKS.md.

On a `temporal_layers="animatediff"` model the three temporal-attention paths (fused-frame-attention,
linear-gelu, frame-major-tokens) find no sdvideo temporal attention and switch nothing; the others apply to
its 2-D layers and diffusers' motion modules alike.

`devices`: the device types on which the device-specific paths (fused-frame-attention, linear-gelu,
bias-after-matmul, channel-stats-group-norm) run; CUDA by default. The others apply on any device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

    from ..models.video_unet import VideoUNet

TRAINING_PATHS = ("lean-convs", "subpixel-upsample", "fused-frame-attention")
INFERENCE_PATHS = ("subpixel-upsample", "fused-frame-attention", "linear-gelu", "bias-after-matmul",
                   "channel-stats-group-norm", "frame-major-tokens", "guidance-pair")
DEVICES = frozenset({"cuda"})

__all__ = ["DEVICES", "INFERENCE_PATHS", "TRAINING_PATHS", "enable_fast_inference", "enable_fast_training",
           "fast_vae"]


def _chosen(paths: Iterable[str] | None, known: tuple[str, ...], call: str) -> set[str]:
    chosen = set(known if paths is None else paths)
    if chosen - set(known):
        raise ValueError(f"{call}: unknown paths {', '.join(sorted(chosen - set(known)))}; "
                         f"choose from {', '.join(known)}")
    return chosen


def _temporal_transformers(video_unet: "VideoUNet"):
    from ..models.temporal_attention import TemporalTransformer

    return [m for m in video_unet.modules() if isinstance(m, TemporalTransformer)]


def enable_fast_training(video_unet: "VideoUNet", paths: Iterable[str] | None = None, devices: Iterable[str] = DEVICES,
                         subpixel_form: str = "auto") -> "VideoUNet":
    """Switch `video_unet` (in place) to the faster forms that serve training: `paths` (default all of
    TRAINING_PATHS). subpixel_form: how compiled graphs compute the upsamplers ("auto", "conv", "matmul"; see
    `subpixel_upsample.compiled_form`). Calling again adds paths; none is switched off. Returns `video_unet`."""
    from ..models.lean_conv import LeanConv2d, make_convs_lean
    from .subpixel_upsample import install_subpixel_upsamplers

    chosen = _chosen(paths, TRAINING_PATHS, "enable_fast_training")
    if "lean-convs" in chosen:
        make_convs_lean(video_unet.unet)
        if video_unet.channels_last:  # as `to_channels_last` sets it
            for module in video_unet.modules():
                if isinstance(module, LeanConv2d):
                    module.channels_last_io = True
    if "subpixel-upsample" in chosen:
        install_subpixel_upsamplers(video_unet.unet, subpixel_form)
    if "fused-frame-attention" in chosen:
        for layer in _temporal_transformers(video_unet):
            layer.fused_attention_devices = frozenset(devices)
    return video_unet


def enable_fast_inference(video_unet: "VideoUNet", paths: Iterable[str] | None = None,
                          devices: Iterable[str] = DEVICES, subpixel_form: str = "auto") -> "VideoUNet":
    """Switch `video_unet` (in place) to the faster forms for sampling: `paths` (default all of INFERENCE_PATHS;
    see this module's table). Training steps are unaffected by the inference-only ones (they check for autograd).
    Calling again adds paths; none is switched off. Returns `video_unet`."""
    from .bias_after_matmul import install_bias_after_matmul
    from .channel_stats_group_norm import install_channel_stats_group_norm
    from .guidance_pair import install_guidance_pair

    chosen = _chosen(paths, INFERENCE_PATHS, "enable_fast_inference")
    devices = frozenset(devices)
    enable_fast_training(video_unet, [p for p in TRAINING_PATHS if p in chosen], devices, subpixel_form)
    layers = _temporal_transformers(video_unet)
    if "linear-gelu" in chosen:
        for layer in layers:
            layer.linear_gelu_devices = devices
    if "frame-major-tokens" in chosen:
        for layer in layers:
            layer.frame_major = True
    if "bias-after-matmul" in chosen:
        install_bias_after_matmul(video_unet.unet, devices)
    if "channel-stats-group-norm" in chosen:
        install_channel_stats_group_norm(video_unet.unet, devices)
    if "guidance-pair" in chosen:
        install_guidance_pair(video_unet.unet, video_unet.frame_context)
    return video_unet


def fast_vae(vae: "AutoencoderKL") -> "AutoencoderKL":
    """`vae` with its decoder's upsamplers as four 2 x 2 convolutions (`subpixel_upsample.py`), in a copy of its
    modules sharing its weights: `vae` itself stays as it was. Returns `vae` where nothing is to switch."""
    from .subpixel_upsample import with_subpixel_upsamplers

    return with_subpixel_upsamplers(vae)
