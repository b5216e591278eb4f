"""AnimateDiff's motion modules inside a `VideoUNet` (`temporal_layers="animatediff"`).

The motion modules are diffusers' own `AnimateDiffTransformer3D` (the module `MotionAdapter` and
`UNetMotionModel` hold), placed where `UNetMotionModel.from_unet2d` places them:

- down blocks: one after each (resnet, spatial transformer) pair, after the resnet in blocks without
  attention (`layers_per_block` per block);
- up blocks: the same (`layers_per_block + 1` per block);
- mid block: one after its spatial transformer, when `use_motion_mid_block` (AnimateDiff v2 and v3; not v1).

Each sits in a `MotionModuleAfter` wrapper around the spatial module it follows (the `Transformer2DModel`,
or the `ResnetBlock2D` in blocks without attention), so the 2-D UNet's own blocks run unchanged: the
wrapper runs the spatial module on (batch * frames, C, H, W), then, when the frame context enables time,
the motion module over each video's frames. Its `proj_out` starts at zero, as in AnimateDiff's training
code, so an inflated model starts as the image model frame by frame.

Weight names: in the VideoUNet a motion module's weights are `unet.<block>.attentions.<j>.temporal.*` (or
`.resnets.<j>.temporal.*`); `adapter_names` maps them to `MotionAdapter`'s (`<block>.motion_modules.<j>.*`),
and `adapter_config` gives the matching `MotionAdapter` config.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn

from .temporal_wrappers import FrameContext, _maybe_checkpoint

# VideoUNet's motion options and their defaults: AnimateDiff v2/v3 for SD 1.5 (MotionAdapter's defaults)
MOTION_DEFAULTS: dict[str, Any] = dict(
    motion_num_attention_heads=8,
    motion_norm_num_groups=None,  # None: the UNet's norm_num_groups, as UNetMotionModel builds its modules
    motion_max_seq_length=32,
    use_motion_mid_block=True,
    motion_transformer_layers_per_block=1,
    motion_transformer_layers_per_mid_block=1,
)


class MotionModuleAfter(nn.Module):
    """A spatial module (`Transformer2DModel` or `ResnetBlock2D`) followed by an AnimateDiff motion module."""

    def __init__(self, spatial: nn.Module, motion: AnimateDiffTransformer3D, context: FrameContext) -> None:
        super().__init__()
        self.spatial = spatial
        self.temporal = motion
        self.context = context
        self.returns_output = isinstance(spatial, Transformer2DModel)  # a transformer returns (x,) or an output

    def forward(self, *args: Any, **kwargs: Any):
        return_dict = kwargs.pop("return_dict", True) if self.returns_output else False
        if self.returns_output:
            x = self.spatial(*args, return_dict=False, **kwargs)[0]  # (batch * frames, C, H, W)
        else:
            x = self.spatial(*args, **kwargs)  # (batch * frames, C, H, W)
        ctx = self.context
        if ctx.enable_time:
            x = _maybe_checkpoint(ctx.checkpoint_temporal, self._motion, x, ctx.num_frames)
        if not self.returns_output:
            return x
        return Transformer2DModelOutput(sample=x) if return_dict else (x,)

    def _motion(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.temporal(x, num_frames=num_frames)  # (batch * frames, C, H, W), residual inside


def per_block(value: int | list[int] | tuple[int, ...], blocks: int, name: str) -> list[int]:
    """An int or one value per UNet block, as a list of `blocks` ints."""
    values = [value] * blocks if isinstance(value, int) else list(value)
    if len(values) != blocks:
        raise ValueError(f"{name} must be an int or {blocks} values (one per UNet block), got {value!r}")
    return [int(v) for v in values]


def make_motion_module(channels: int, heads: int, layers: int, norm_groups: int, max_seq_length: int,
                       ref: torch.Tensor | None = None) -> AnimateDiffTransformer3D:
    """One AnimateDiff motion module over `channels`, as UNetMotionModel builds it, `proj_out` zeroed."""
    if channels % heads:
        raise ValueError(f"motion_num_attention_heads {heads} does not divide {channels} channels")
    module = AnimateDiffTransformer3D(
        num_attention_heads=heads, attention_head_dim=channels // heads, in_channels=channels, num_layers=layers,
        norm_num_groups=norm_groups, cross_attention_dim=None, attention_bias=False, activation_fn="geglu",
        positional_embeddings="sinusoidal", num_positional_embeddings=max_seq_length, double_self_attention=True,
    )
    nn.init.zeros_(module.proj_out.weight)
    nn.init.zeros_(module.proj_out.bias)
    if ref is not None:
        module = module.to(ref.device, ref.dtype)
    return module


def install_motion_modules(unet: nn.Module, context: FrameContext, options: dict[str, Any]) -> None:
    """Wrap the spatial modules of a diffusers `UNet2DConditionModel` in `MotionModuleAfter` (in place, once)."""
    cfg = unet.config
    n = len(cfg.block_out_channels)
    heads = per_block(options["motion_num_attention_heads"], n, "motion_num_attention_heads")
    layers = per_block(options["motion_transformer_layers_per_block"], n, "motion_transformer_layers_per_block")
    groups = options["motion_norm_num_groups"] or cfg.norm_num_groups
    seq = options["motion_max_seq_length"]

    def wrap(block: nn.Module, heads_i: int, layers_i: int) -> None:
        attentions = getattr(block, "attentions", None)
        holder = attentions if attentions else block.resnets
        for j, spatial in enumerate(holder):
            if isinstance(spatial, MotionModuleAfter):
                continue
            if not isinstance(spatial, (Transformer2DModel, ResnetBlock2D)):
                raise ValueError(f"animatediff motion modules need diffusers' Transformer2DModel / ResnetBlock2D "
                                 f"blocks, got {type(spatial).__name__}")
            channels = spatial.config.in_channels if isinstance(spatial, Transformer2DModel) else spatial.out_channels
            ref = next(spatial.parameters())
            motion = make_motion_module(channels, heads_i, layers_i, groups, seq, ref)
            holder[j] = MotionModuleAfter(spatial, motion, context)

    for i, block in enumerate(unet.down_blocks):
        wrap(block, heads[i], layers[i])
    for i, block in enumerate(unet.up_blocks):
        wrap(block, heads[n - 1 - i], layers[n - 1 - i])
    if options["use_motion_mid_block"]:
        if unet.mid_block is None or not getattr(unet.mid_block, "attentions", None):
            raise ValueError("use_motion_mid_block needs a UNet mid block with attention")
        wrap(unet.mid_block, heads[-1], options["motion_transformer_layers_per_mid_block"])


_VIDEO_NAME = re.compile(r"^(?:unet\.)?(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.(?:attentions|resnets)\.(\d+)"
                         r"\.temporal\.(.+)$")
_ADAPTER_NAME = re.compile(r"^(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.(\d+)\.(.+)$")


def adapter_name(video_name: str) -> str | None:
    """A VideoUNet motion weight's `MotionAdapter` name (`unet.down_blocks.0.attentions.1.temporal.proj_in.weight`
    -> `down_blocks.0.motion_modules.1.proj_in.weight`); None for any other name."""
    m = _VIDEO_NAME.match(video_name)
    return f"{m[1]}.motion_modules.{m[2]}.{m[3]}" if m else None


def motion_state_names(unet: nn.Module) -> dict[str, str]:
    """MotionAdapter name -> name in `unet`'s state dict, for every motion module weight and buffer of `unet`."""
    out = {}
    for key in unet.state_dict():
        name = adapter_name(key)
        if name is not None:
            out[name] = key
    return out


def adapter_config(unet_config: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The `MotionAdapter` config (`MotionAdapter.from_config`) whose modules are these motion modules."""
    return dict(
        block_out_channels=list(unet_config["block_out_channels"]),
        motion_layers_per_block=_plain(unet_config["layers_per_block"]),
        motion_transformer_layers_per_block=_plain(options["motion_transformer_layers_per_block"]),
        motion_mid_block_layers_per_block=1,
        motion_transformer_layers_per_mid_block=_plain(options["motion_transformer_layers_per_mid_block"]),
        motion_num_attention_heads=_plain(options["motion_num_attention_heads"]),
        motion_norm_num_groups=options["motion_norm_num_groups"] or unet_config["norm_num_groups"],
        motion_max_seq_length=options["motion_max_seq_length"],
        use_motion_mid_block=bool(options["use_motion_mid_block"]),
        conv_in_channels=None,
    )


def motion_options_from_adapter_config(config: dict[str, Any]) -> dict[str, Any]:
    """VideoUNet's motion options for a `MotionAdapter` config (a folder's config.json)."""
    if int(config.get("motion_mid_block_layers_per_block", 1)) != 1:
        raise ValueError("motion_mid_block_layers_per_block must be 1 (SD's mid block has one transformer)")
    if config.get("conv_in_channels"):
        raise ValueError("a PIA motion adapter (conv_in_channels) is not supported")
    return dict(
        motion_num_attention_heads=_plain(config.get("motion_num_attention_heads", 8)),
        motion_norm_num_groups=None,  # UNetMotionModel.from_unet2d normalises with the UNet's groups too
        motion_max_seq_length=int(config.get("motion_max_seq_length", 32)),
        use_motion_mid_block=bool(config.get("use_motion_mid_block", True)),
        motion_transformer_layers_per_block=_plain(config.get("motion_transformer_layers_per_block", 1)),
        motion_transformer_layers_per_mid_block=_plain(config.get("motion_transformer_layers_per_mid_block", 1)),
    )


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
