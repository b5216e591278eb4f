"""The video UNet: a Stable Diffusion 2-D UNet with temporal layers of one of two designs.

`temporal_layers="pseudo3d"` (the default, Make-A-Video's): `inflate(unet)` wraps every resnet convolution
of a diffusers `UNet2DConditionModel` in a pseudo-3D convolution and every spatial transformer in a
spatio-temporal one (see `temporal_wrappers.py`). `temporal_layers="animatediff"`: AnimateDiff's motion
modules (diffusers' `AnimateDiffTransformer3D`) where diffusers' `UNetMotionModel` has them, so AnimateDiff
motion weights load into it and train on (see `motion_modules.py`, `motion_module_file.py`).
All new layers start as exact identities, so at initialisation the video model computes, frame by
frame, what the image model computes. The UNet passed in is left as it was: the video model shares its
parameters (the same tensors, no copy of the weights) but wraps copies of its modules (`shared_copy.py`).

Parameter names: the 2-D UNet's parameters live under `unet.`, with `.spatial` inserted where a
module was wrapped; `spatial_state_dict()` / `load_spatial_state_dict()` translate to and from the
plain 2-D names, so another fine-tune of the same base can be swapped in under trained temporal layers.

The model as built runs the network this file shows. Faster forms of the same layers (lean frozen
convolutions, subpixel upsamplers, fused kernels, the guidance pair, ...) are switched on explicitly by
`enable_fast_training()` and `enable_fast_inference()`, all in `sdvideo/fast/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from diffusers.utils import BaseOutput
from torch import nn

from .. import choices
from .fps_embedding import FpsEmbedding
from .frame_conditioning import concat_conditioning, install_frame_conditioning
from .lean_conv import LeanConv2d
from .motion_modules import (
    MOTION_DEFAULTS,
    MotionModuleAfter,
    adapter_config,
    install_motion_modules,
    motion_state_names,
)
from .shared_copy import shared_parameter_copy
from .temporal_attention import TemporalTransformer, rotary_cos_sin
from .temporal_conv import TemporalConv
from .temporal_wrappers import (
    KEEP_LONG_ATTENTION,
    FpsConditionedTimeEmbedding,
    FrameContext,
    PseudoConv3d,
    SavePolicy,
    SpatioTemporalTransformer,
)

TEMPORAL_TYPES = (TemporalConv, TemporalTransformer, FpsEmbedding, AnimateDiffTransformer3D)
TEMPORAL_LAYERS = choices.TEMPORAL_LAYERS  # the designs `temporal_layers` chooses between
# pseudo3d's own options, with their defaults: an animatediff model refuses other values
PSEUDO3D_DEFAULTS: dict[str, Any] = dict(temporal_conv=True, temporal_attention=True, temporal_head_dim=64,
                                         temporal_ff_mult=2, temporal_kernel_size=3, rope_base=10000.0,
                                         temporal_context="clip", temporal_embedding=False)


@dataclass
class VideoUNetOutput(BaseOutput):
    sample: torch.Tensor  # (batch, channels, frames, height, width)


class VideoUNet(ModelMixin, ConfigMixin):
    """A video UNet built around a diffusers `UNet2DConditionModel`.

    Args:
        unet_config: the 2-D UNet's config (a plain dict, as saved in its `config.json`).
        temporal_layers: "pseudo3d": Make-A-Video's temporal convolutions and temporal attention (the
            options below up to `temporal_embedding`); "animatediff": AnimateDiff's motion modules (the
            `motion_*` options), which load AnimateDiff / diffusers `MotionAdapter` weights.
        temporal_conv: put a kernel-3 temporal convolution after both convolutions of every resnet.
        temporal_attention: put temporal self-attention after every spatial transformer.
        temporal_head_dim: channels per temporal attention head (64: flash-attention friendly).
        temporal_ff_mult: hidden width of the temporal feed-forward, as a multiple of the channels
            (0: attention only).
        temporal_kernel_size: frames seen by a temporal convolution.
        fps_conditioning: add a zero-initialised frames-per-second embedding to the time embedding.
        rope_base: base of the rotary frame-position frequencies.
        condition_channels: extra input channels for masked-frame conditioning (known frames'
            latents + a mask, see `frame_conditioning.py`); 0: none. Zero-initialised.
        temporal_context: "clip": temporal attention sees every frame of the clip; "frame": each
            frame attends to itself only. With `temporal_kernel_size=1` too, "frame" makes the capacity
            control: the same layers (one-tap temporal convolutions), but no information passes between
            frames.
        temporal_embedding: temporal attention reads the UNet's time embedding (the diffusion step, and the
            fps when conditioned) through a projection added to its attention input, as the spatial resnets
            do: without it the temporal layers cannot tell noise levels or frame rates apart except through
            the frozen layers' features.
        motion_num_attention_heads: (animatediff) heads of each motion module, one int or one per UNet block.
        motion_norm_num_groups: (animatediff) GroupNorm groups of the motion modules; None: the UNet's
            `norm_num_groups`, as diffusers' `UNetMotionModel` builds them.
        motion_max_seq_length: (animatediff) the most frames a motion module's position table covers.
        use_motion_mid_block: (animatediff) a motion module in the mid block too (AnimateDiff v2, v3; not v1).
        motion_transformer_layers_per_block: (animatediff) transformer layers per motion module, one int or
            one per UNet block.
        motion_transformer_layers_per_mid_block: (animatediff) transformer layers of the mid block's module.

    The constructed model switches no class and installs no hook: faster forms of its layers come with
    `enable_fast_training()` (what `sdvideo train` runs) and `enable_fast_inference()` (sampling), see
    `sdvideo.fast`.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        unet_config: dict[str, Any],
        temporal_conv: bool = True,
        temporal_attention: bool = True,
        temporal_head_dim: int = 64,
        temporal_ff_mult: int = 2,
        temporal_kernel_size: int = 3,
        fps_conditioning: bool = True,
        rope_base: float = 10000.0,
        condition_channels: int = 0,
        temporal_context: str = "clip",
        temporal_embedding: bool = False,
        temporal_layers: str = "pseudo3d",
        motion_num_attention_heads: int | list[int] = 8,
        motion_norm_num_groups: int | None = None,
        motion_max_seq_length: int = 32,
        use_motion_mid_block: bool = True,
        motion_transformer_layers_per_block: int | list[int] = 1,
        motion_transformer_layers_per_mid_block: int = 1,
    ) -> None:
        super().__init__()
        if temporal_context not in ("clip", "frame"):
            raise ValueError(f"temporal_context must be 'clip' or 'frame', got {temporal_context!r}")
        _check_design(temporal_layers, locals())
        self.unet = UNet2DConditionModel.from_config(dict(unet_config))
        self._install_temporal_layers()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, **temporal_options: Any) -> "VideoUNet":
        """Wrap an existing 2-D UNet. Its parameters are shared (the same tensors, no copy), its modules are
        not: the video model wraps and re-classes copies of them, so `unet` itself stays a plain image UNet."""
        if not isinstance(unet, UNet2DConditionModel):
            raise TypeError(f"inflate expects a diffusers UNet2DConditionModel, got {type(unet).__name__}")
        config = _plain(dict(unet.config))
        with torch.device("meta"):  # build the shell without allocating a second 2-D UNet
            video = cls(unet_config=config, **temporal_options)
        video.unet = shared_parameter_copy(unet)
        video._install_temporal_layers()
        return video

    @property
    def animatediff(self) -> bool:
        """Whether the temporal layers are AnimateDiff motion modules (else pseudo-3D ones)."""
        return self.config.get("temporal_layers", "pseudo3d") == "animatediff"

    def _install_temporal_layers(self) -> None:
        cfg = self.config
        self.frame_context = FrameContext()
        if self.animatediff:
            install_motion_modules(self.unet, self.frame_context, {k: cfg[k] for k in MOTION_DEFAULTS})
        for name, module in [] if self.animatediff else list(self.unet.named_modules()):
            if cfg.temporal_conv and isinstance(module, ResnetBlock2D):
                for conv_name in ("conv1", "conv2"):
                    conv = getattr(module, conv_name)
                    if not isinstance(conv, PseudoConv3d):
                        wrapped = PseudoConv3d(conv, self.frame_context, cfg.temporal_kernel_size)
                        setattr(module, conv_name, wrapped.to(conv.weight.device, conv.weight.dtype))
            if cfg.temporal_attention and isinstance(module, (nn.ModuleList,)):
                for i, child in enumerate(module):
                    if isinstance(child, Transformer2DModel):
                        wrapped = SpatioTemporalTransformer(
                            child,
                            _transformer_channels(child),
                            self.frame_context,
                            head_dim=cfg.temporal_head_dim,
                            ff_mult=cfg.temporal_ff_mult,
                            rope_base=cfg.rope_base,
                            frame_local=cfg.temporal_context == "frame",
                            embedding_dim=self._time_embed_dim() if cfg.temporal_embedding else None,
                        )
                        ref = next(child.parameters())
                        module[i] = wrapped.to(ref.device, ref.dtype)
        wants_embedding = cfg.fps_conditioning or (cfg.temporal_embedding and cfg.temporal_attention)
        if wants_embedding and not isinstance(self.unet.time_embedding, FpsConditionedTimeEmbedding):
            te = self.unet.time_embedding
            ref = te.linear_1.weight
            self.unet.time_embedding = FpsConditionedTimeEmbedding(
                te, self._time_embed_dim(), self.frame_context, fps=cfg.fps_conditioning).to(ref.device, ref.dtype)
        if cfg.condition_channels:
            install_frame_conditioning(self, cfg.condition_channels)
        self._rotary_keys = {(m.head_dim, m.rope_base) for m in self.modules() if isinstance(m, TemporalTransformer)}

    def _time_embed_dim(self) -> int:
        te = self.unet.time_embedding
        return getattr(te, "spatial", te).linear_2.out_features

    # ------------------------------------------------------------------ faster forms (sdvideo/fast/)
    def enable_fast_training(self, paths=None, **options: Any) -> "VideoUNet":
        """Faster forms of this model's layers that serve training (and sampling): lean frozen convolutions,
        subpixel upsamplers, the fused temporal attention kernel. See `sdvideo.fast.enable_fast_training`."""
        from ..fast import enable_fast_training

        return enable_fast_training(self, paths, **options)

    def enable_fast_inference(self, paths=None, **options: Any) -> "VideoUNet":
        """Every faster form for sampling, the guidance pair's shared layers included. Call it before
        `compile_regions`. See `sdvideo.fast.enable_fast_inference`. On an animatediff model the paths for
        sdvideo's temporal attention have nothing to switch; the others apply as to pseudo3d."""
        from ..fast import enable_fast_inference

        return enable_fast_inference(self, paths, **options)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        fps: torch.Tensor | float | None = None,
        enable_time: bool = True,
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        conditioning: torch.Tensor | None = None,
        guidance_pair: bool = False,
    ) -> VideoUNetOutput | tuple[torch.Tensor]:
        """Denoise a batch of videos.

        Args:
            sample: noisy latents (batch, channels, frames, height, width).
            timestep: scalar or (batch,) diffusion timesteps, shared by the frames of a video.
            encoder_hidden_states: text embeddings (batch, tokens, dim), shared by all frames.
            fps: frames per second of each video, scalar or (batch,); None: no fps conditioning.
            enable_time: False runs the frames independently (temporal layers and fps embedding off):
                the frame-independent baseline, and how single images pass in joint training.
            conditioning: (batch, condition_channels, frames, height, width) known frames' latents
                and mask, concatenated to the input channels (None on a conditioned model: no frame known).
            guidance_pair: the batch's two halves (classifier-free guidance's unconditional and
                conditional passes) hold the same latents, timestep, fps and conditioning and differ only
                in `encoder_hidden_states`. After `enable_fast_inference()` the layers before the text then
                run once for both (`sdvideo/fast/guidance_pair.py`: same results, less work); otherwise the
                flag changes nothing.
        """
        channels = self.unet.config.in_channels  # the latents' channels (condition channels come apart)
        if sample.ndim != 5 or (sample.shape[1] != channels and sample.shape[2] == channels):
            # an image batch (b, c, h, w) or frames-first latents (b, f, c, h, w) would otherwise fail deep
            # inside the UNet with a shape error that names neither
            raise ValueError(f"VideoUNet expects latents (batch, channels, frames, height, width) with "
                             f"channels={channels}; got {tuple(sample.shape)}"
                             + ("; for (batch, frames, channels, ...) pass sample.transpose(1, 2)"
                                if sample.ndim == 5 else ""))
        if guidance_pair:
            if sample.shape[0] % 2:
                raise ValueError(f"guidance_pair needs a batch of two halves, got {sample.shape[0]} videos")
        sample = concat_conditioning(sample, conditioning, self.config.condition_channels)  # (b, c + k, f, h, w)
        b, c, f, h, w = sample.shape
        if self.animatediff and enable_time and f > self.config.motion_max_seq_length:
            raise ValueError(f"the motion modules take at most {self.config.motion_max_seq_length} frames "
                             f"(motion_max_seq_length), got {f}; sample longer videos in windows (--window)")
        frames = sample.transpose(1, 2).reshape(b * f, c, h, w)  # (b*f, c, h, w), video-major
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)  # the layout the convs' weights are in
        t = torch.as_tensor(timestep, device=sample.device)
        t = (t.expand(b) if t.ndim == 0 else t).repeat_interleave(f)
        text = encoder_hidden_states.repeat_interleave(f, dim=0)  # (b*f, tokens, dim)
        fps_per_frame = None
        if fps is not None and self.config.fps_conditioning and enable_time:
            fps_t = torch.as_tensor(fps, device=sample.device, dtype=torch.float32)
            fps_per_frame = (fps_t.expand(b) if fps_t.ndim == 0 else fps_t).repeat_interleave(f)
        # The context stays set after the call (no restore): activation checkpointing recomputes
        # layers during backward, and they must see the same frame count as in this forward.
        ctx = self.frame_context
        ctx.num_frames, ctx.enable_time, ctx.fps, ctx.guidance_pair = f, enable_time, fps_per_frame, guidance_pair
        ctx.rotary = {  # the frame-position tables every temporal attention layer of this call applies
            key: rotary_cos_sin(f, *key, sample.device)
            for key in self._rotary_keys
        } if enable_time else {}
        out = self.unet(frames, t, text, cross_attention_kwargs=cross_attention_kwargs, return_dict=False)[0]
        out = out.reshape(b, f, out.shape[1], h, w).transpose(1, 2)  # (b, c_out, f, h, w)
        if not return_dict:
            return (out,)
        return VideoUNetOutput(sample=out)

    # Least recomputation (and most memory) first. selective-N, light-N: selective checkpointing of the
    # transformers on the N highest-resolution levels only (the largest activations per FLOP recomputed).
    # light-1 recomputes less than selective-1 for about the same memory, light-2 less than selective-2
    # for a little more (2 x 16 frames, block regions; BENCHMARKS.md). light-1+K sit between light-1 and
    # light-2 in step time and memory, about 1 GiB apart.
    CHECKPOINTING = choices.GRADIENT_CHECKPOINTING

    def set_gradient_checkpointing(self, granularity: str) -> None:
        """Trade compute for memory: recompute activations in backward instead of storing them.

        none: store everything. temporal: recompute the temporal layers. selective: recompute every
        spatio-temporal transformer but keep its long self-attention kernels' outputs (the costliest
        part to recompute, a small part of the memory; see `keeps_attention_output`). selective-1,
        selective-2: the same for the transformers of the one or two highest-resolution UNet levels
        only (at 512 px: 64 x 64, then 32 x 32 latents); the lower levels' transformers store theirs,
        which costs a quarter of the memory per recomputed FLOP. light-1, light-2: those transformers
        recompute only their norms, pointwise ops and the projections out of the residual stream, and
        store every attention output and wider matmul (`SavePolicy`): less memory freed than
        selective-N, for much less recomputation. light-1+K: light-1 plus the first K transformers of
        the next level (down blocks first), for memory between light-1 and light-2. attention: recompute
        every spatio-temporal transformer whole (the largest activations). blocks: diffusers' own
        checkpointing of the UNet blocks' resnets, plus attention. full: blocks plus temporal layers
        inside them.

        With `temporal_layers="animatediff"`: none stores everything; blocks is diffusers' block checkpointing;
        full is that plus recomputing the motion modules; every other level recomputes the motion modules
        (the per-level and selective forms belong to pseudo3d's spatio-temporal transformers).
        """
        if granularity not in self.CHECKPOINTING:
            raise ValueError(f"gradient checkpointing must be one of {', '.join(self.CHECKPOINTING)}, got {granularity!r}")
        ctx = self.frame_context
        if self.animatediff:
            # Motion modules: every level but none and blocks recomputes them (the per-level and selective
            # forms are pseudo3d's transformers'); blocks and full add diffusers' block checkpointing.
            ctx.checkpoint_temporal = granularity not in ("none", "blocks")
            ctx.checkpoint_attention = False
            if granularity in ("blocks", "full"):
                self.unet.enable_gradient_checkpointing()
            else:
                self.unet.disable_gradient_checkpointing()
            return
        ctx.checkpoint_temporal = granularity in ("temporal", "full")
        ctx.checkpoint_attention = granularity in ("selective", "attention", "blocks", "full")
        recomputed = self._recomputed_transformers(granularity)
        for _, transformer in self._transformers_by_level():
            transformer.checkpoint = None if recomputed is None else transformer in recomputed
            if granularity.startswith("light-"):
                transformer.save_policy = SavePolicy(max_recomputed_contraction=transformer.temporal.to_out.in_features)
            else:
                transformer.save_policy = KEEP_LONG_ATTENTION if granularity.startswith("selective") else None
        if granularity in ("blocks", "full"):
            self.unet.enable_gradient_checkpointing()
        else:
            self.unet.disable_gradient_checkpointing()

    def _recomputed_transformers(self, granularity: str) -> list[SpatioTemporalTransformer] | None:
        """The transformers a per-level granularity (`light-1+2`: levels < 1, then 2 of level 1)
        recomputes; None for the others (every transformer as the frame context says)."""
        if "-" not in granularity:
            return None
        levels, _, extra = granularity.split("-")[1].partition("+")
        levels, extra = int(levels), int(extra or 0)
        by_level = list(self._transformers_by_level())  # down blocks, up blocks, mid block
        return [t for level, t in by_level if level < levels] + [t for level, t in by_level if level == levels][:extra]

    def _transformers_by_level(self) -> Iterator[tuple[int, SpatioTemporalTransformer]]:
        """(resolution level, 0 the highest, transformer) for every spatio-temporal transformer."""
        down, up = self.unet.down_blocks, self.unet.up_blocks
        blocks = [(i, b) for i, b in enumerate(down)] + [(len(up) - 1 - j, b) for j, b in enumerate(up)]
        blocks.append((len(down) - 1, self.unet.mid_block))
        for level, block in blocks:
            for module in getattr(block, "attentions", None) or []:
                if isinstance(module, SpatioTemporalTransformer):
                    yield level, module

    channels_last = False  # set by `to_channels_last`
    COMPILE_REGIONS = choices.COMPILE_REGIONS

    def to_channels_last(self) -> "VideoUNet":
        """Store the convolutions' weights channels-last and feed the frames in that layout, so every
        activation is channels-last (cuDNN's native layout on recent GPUs: no conversion around each
        convolution; the temporal layers keep the layout they are given). The temporal convolutions'
        weights too: a compiled inference graph otherwise chooses the plain layout for them, and cuDNN
        converts their activations in and out (BENCHMARKS.md)."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        for module in self.modules():
            if isinstance(module, LeanConv2d):
                module.channels_last_io = True  # compiled: its input and output gradient channels-last too
            if isinstance(module, TemporalConv):  # its (out, in, k) weight with `in` innermost: channels-last 3-D
                module.conv.weight.data = module.conv.weight.data.transpose(1, 2).contiguous().transpose(1, 2)
        return self

    def compile_regions(self, channels_last: bool = True, regions: str = "layers", **compile_options: Any) -> "VideoUNet":
        """`torch.compile` every repeated block in place: resnets (with their temporal convs) and
        spatio-temporal transformers (spatial transformer + temporal attention, one region); with
        `temporal_layers="animatediff"`, each spatial module with its motion module (`MotionModuleAfter`).

        Regional compilation: blocks of one class and shape share compiled code, so compiling takes
        seconds rather than the minutes a whole-UNet graph takes, and names and state dict are
        unchanged. A new frame count or resolution recompiles the blocks once. A transformer's
        activation checkpointing happens inside its compiled region, so the compiler sees what is
        recomputed (fused into backward) and which outputs selective checkpointing keeps.

        regions: "layers" as above, and the upsamplers (`SubpixelUpsample2D`, in the form chosen per shape);
        "blocks": each UNet down, mid and up block as one region (its skip concatenations and resampling
        convolutions fused too; fewer, larger graphs, none shared).
        channels_last: `to_channels_last()` first. Faster compiled, slower eager (BENCHMARKS.md), so it comes
        with compiling.
        """
        import torch._dynamo

        # One code object (e.g. ResnetBlock2D.forward) serves every block, and SD's blocks come in
        # ~20 channel/resolution shapes: above dynamo's default limit of 8 it would fall back to eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        # Static shapes: otherwise dynamo's second shape of a block makes its graph shape-generic
        # (slower kernels, and inductor failed on such graphs on the CPU: "cannot determine truth
        # value of Relational"). Each block shape compiles once.
        compile_options.setdefault("dynamic", False)
        if regions not in self.COMPILE_REGIONS:
            raise ValueError(f"regions must be one of {', '.join(self.COMPILE_REGIONS)}, got {regions!r}")
        if channels_last:
            self.to_channels_last()
        for module in self._compile_targets(regions):
            module.compile(**compile_options)
        return self

    def _compile_targets(self, regions: str) -> list[nn.Module]:
        from ..fast.subpixel_upsample import SubpixelUpsample2D

        if regions == "blocks":
            return [*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks]
        wrappers = (SpatioTemporalTransformer, MotionModuleAfter)  # each one region with what it wraps
        wrapped = {id(m) for w in self.modules() if isinstance(w, wrappers) for m in w.modules() if m is not w}
        return [module for module in self.modules() if id(module) not in wrapped and isinstance(
            module, (ResnetBlock2D, *wrappers, SubpixelUpsample2D, Transformer2DModel, TemporalTransformer))]

    # ------------------------------------------------------------------ parameters
    def temporal_modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name, module in self.named_modules():
            if isinstance(module, TEMPORAL_TYPES):
                yield name, module

    def temporal_parameters(self) -> Iterator[nn.Parameter]:
        for _, module in self.temporal_modules():
            yield from module.parameters()

    def freeze_spatial(self) -> "VideoUNet":
        """Freeze every parameter of the image model; only the temporal layers train."""
        self.requires_grad_(False)
        for p in self.temporal_parameters():
            p.requires_grad_(True)
        return self

    def parameter_summary(self) -> dict[str, int]:
        temporal = {id(p) for p in self.temporal_parameters()}
        params = list(self.parameters())
        return dict(
            total=sum(p.numel() for p in params),
            spatial=sum(p.numel() for p in params if id(p) not in temporal),
            temporal=sum(p.numel() for p in params if id(p) in temporal),
            trainable=sum(p.numel() for p in params if p.requires_grad),
            frozen=sum(p.numel() for p in params if not p.requires_grad),
        )

    def format_parameter_summary(self) -> str:
        s = self.parameter_summary()
        return (
            f"parameters: total {s['total'] / 1e6:.2f} M = spatial {s['spatial'] / 1e6:.2f} M + temporal "
            f"{s['temporal'] / 1e6:.2f} M; trainable {s['trainable'] / 1e6:.2f} M, frozen {s['frozen'] / 1e6:.2f} M"
        )

    def spatial_state_dict(self) -> dict[str, torch.Tensor]:
        """The 2-D UNet's weights under its own (un-wrapped) names."""
        temporal = {id(p) for p in self.temporal_parameters()}
        named = dict(self.unet.named_parameters())
        out = {_unwrap_name(k): v for k, v in named.items() if id(v) not in temporal}
        out.update({_unwrap_name(k): v for k, v in self.unet.named_buffers() if not _is_temporal_name(k)})
        return out

    def load_spatial_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load 2-D UNet weights (plain diffusers names) under the temporal layers."""
        targets = {_unwrap_name(k): k for k in self.unet.state_dict() if not _is_temporal_name(k)}
        missing = set(targets) - set(state_dict)
        unexpected = set(state_dict) - set(targets)
        if strict and (missing or unexpected):
            raise ValueError(
                f"2-D UNet weights do not match: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
                f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})"
            )
        mapped = {targets[k]: v for k, v in state_dict.items() if k in targets}
        self.unet.load_state_dict(mapped, strict=False)

    # ------------------------------------------------------------------ AnimateDiff motion modules
    def motion_adapter_config(self) -> dict[str, Any]:
        """The diffusers `MotionAdapter` config whose modules are this model's motion modules (animatediff)."""
        self._require_animatediff("motion_adapter_config")
        return adapter_config(self.unet.config, {k: self.config[k] for k in MOTION_DEFAULTS})

    def motion_adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The motion modules' weights (and position tables) under diffusers `MotionAdapter` names, e.g.
        `down_blocks.0.motion_modules.1.transformer_blocks.0.attn1.to_q.weight`, `mid_block.motion_modules.0...`:
        `MotionAdapter.from_config(self.motion_adapter_config()).load_state_dict(...)` takes it as it is."""
        self._require_animatediff("motion_adapter_state_dict")
        state = self.unet.state_dict()
        return {name: state[key] for name, key in motion_state_names(self.unet).items()}

    def load_motion_adapter_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load motion module weights under `MotionAdapter` names. Every weight must be there with this model's
        shape; the position tables (`...pos_embed.pe`, fixed sinusoids) may be left out, as diffusers' converter
        of AnimateDiff files leaves them. Raises a one-line ValueError naming what does not match."""
        self._require_animatediff("load_motion_adapter_state_dict")
        names = motion_state_names(self.unet)
        state = self.unet.state_dict()
        unexpected = sorted(set(state_dict) - set(names))
        missing = sorted(k for k in set(names) - set(state_dict) if not k.endswith("pos_embed.pe"))
        if unexpected or missing:
            raise ValueError(f"motion module weights do not match this model: {len(missing)} missing "
                             f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
        for name, value in state_dict.items():
            want = tuple(state[names[name]].shape)
            if tuple(value.shape) != want:
                raise ValueError(f"motion module weight {name} has shape {tuple(value.shape)}, this model's "
                                 f"is {want} (a motion module for another UNet size?)")
        self.unet.load_state_dict({names[k]: v for k, v in state_dict.items()}, strict=False)

    def _require_animatediff(self, call: str) -> None:
        if not self.animatediff:
            raise ValueError(f"{call} needs a VideoUNet with temporal_layers='animatediff', "
                             f"this one has {self.config.get('temporal_layers', 'pseudo3d')!r}")


def _check_design(temporal_layers: str, given: dict[str, Any]) -> None:
    """Refuse an unknown design, and options of one design set away from their defaults on the other."""
    if temporal_layers not in TEMPORAL_LAYERS:
        raise ValueError(f"temporal_layers must be one of {', '.join(TEMPORAL_LAYERS)}, got {temporal_layers!r}")
    other = PSEUDO3D_DEFAULTS if temporal_layers == "animatediff" else MOTION_DEFAULTS
    changed = [k for k, default in other.items() if _plain(given[k]) != default]
    if changed:
        raise ValueError(f"temporal_layers={temporal_layers!r} does not use {', '.join(changed)} (options of "
                         f"temporal_layers={'pseudo3d' if other is PSEUDO3D_DEFAULTS else 'animatediff'!r}); "
                         "leave them at their defaults")


def _transformer_channels(transformer: Transformer2DModel) -> int:
    return transformer.config.in_channels


def _unwrap_name(name: str) -> str:
    return name.replace(".spatial.", ".")


def _is_temporal_name(name: str) -> bool:
    return ".temporal." in name or "fps_embedding." in name


def _plain(value: Any) -> Any:
    """Config values as JSON-friendly plain Python (tuples -> lists, FrozenDict -> dict)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def inflate(unet: UNet2DConditionModel, **temporal_options: Any) -> VideoUNet:
    """Turn a Stable Diffusion 2-D UNet into a video UNet that starts as the identity in time.

    `temporal_options` are `VideoUNet`'s temporal arguments: temporal_layers ("pseudo3d" or "animatediff"),
    fps_conditioning, condition_channels; for pseudo3d temporal_conv, temporal_attention, temporal_head_dim,
    temporal_ff_mult, temporal_kernel_size, rope_base, temporal_context, temporal_embedding; for animatediff
    the motion_* options (see `VideoUNet`).
    """
    return VideoUNet.from_unet(unet, **temporal_options)
