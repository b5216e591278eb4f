"""Nearest 2x upsampling then a 3 x 3 convolution, computed as four 2 x 2 convolutions at low resolution.

Stable Diffusion's UNet (and its VAE decoder) upsample with `F.interpolate(x, scale_factor=2,
mode="nearest")` followed by a 3 x 3 convolution. After a nearest upsampling, each 2 x 2 group of output
pixels sees only a 2 x 2 neighbourhood of the low-resolution input, with some of the 3 x 3 taps landing
on the same input pixel. Output pixel (2i + a, 2j + b) of "phase" (a, b) is therefore a 2 x 2
convolution of the low-resolution input with taps summed from the 3 x 3 kernel:

    rows for a = 0: input rows (i - 1, i) get kernel rows (0, 1 + 2);  a = 1: rows (i, i + 1) get (0 + 1, 2)

and the same for columns. The four phases are one convolution with 4 x the output channels and a 2 x 2
kernel, padded by 1 (output (h + 1) x (w + 1)); phase (a, b) is its window starting at (a, b). Same
result up to rounding, with 16 instead of 36 multiply-adds per low-resolution pixel and channel pair
(4/9 of the FLOPs, times (1 + 1/h)(1 + 1/w) for the padding) and no upsampled copy of the input.
SD 1.5 at 512 px: the UNet's three upsampling convolutions are 2.2 TFLOP of a 32-frame call. Inside a
compiled graph the phases can instead be one matmul over every (tap, phase) pair followed by shifted sums the
compiler fuses (`phases_as_matmul`), the faster form on some shapes (`compiled_form`).

`install_subpixel_upsamplers(module)` switches every diffusers `Upsample2D` of that form to this path in
place (`SubpixelUpsample2D`; parameters, names and state dict unchanged); other forms keep diffusers' code.
`with_subpixel_upsamplers(module)` does it to a copy sharing the module's parameters, for a model the caller
keeps using as it was (the VAE a `VideoPipeline` is given). It serves training too (fewer FLOPs in the
frozen upsamplers' forward and input gradient): `sdvideo.fast.enable_fast_training` and
`enable_fast_inference` apply it to a `VideoUNet`, `VideoPipeline.enable_fast_inference` to its VAE too.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from diffusers.models.upsampling import Upsample2D
from torch import nn

from ..models.layout import is_channels_last
from ..models.shared_copy import shared_parameter_copy

M = TypeVar("M", bound=nn.Module)


def _phase_taps(kernel: torch.Tensor, dim: int) -> list[torch.Tensor]:
    """A 3-tap kernel axis -> the two phases' 2-tap axes: phase 0 sees (k0, k1 + k2), phase 1 (k0 + k1, k2)."""
    k0, k1, k2 = kernel.unbind(dim)
    return [torch.stack((k0, k1 + k2), dim), torch.stack((k0 + k1, k2), dim)]


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """(out, in, 3, 3) -> (4 * out, in, 2, 2): output channel (2a + b) * out + o is phase (a, b)'s filter o.
    Summed in float32 (plain sums: one fused kernel when compiled), returned in the weight's dtype and layout."""
    phases = [col for row in _phase_taps(weight.float(), 2) for col in _phase_taps(row, 3)]  # (a, b) order
    phases = torch.cat(phases).to(weight.dtype)
    return phases.contiguous(memory_format=torch.channels_last) if is_channels_last(weight) else phases


def interleave_phases(y: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(n, 4c, h + 1, w + 1) phase outputs -> (n, c, 2h, 2w): out[:, :, 2i + a, 2j + b] = phase (a, b) at (i + a, j + b).

    Without autograd and outside a compiled graph, one strided view and one copy; otherwise slices and
    stacks (plain backward; inductor fuses them into one kernel)."""
    n, c4, h1, w1 = y.shape
    c, h, w = c4 // 4, h1 - 1, w1 - 1
    if not torch.compiler.is_compiling() and not (torch.is_grad_enabled() and y.requires_grad):
        sn, sc, sh, sw = y.stride()
        # (n, c, h, a, w, b): phase (a, b)'s channel block, shifted by (a, b) pixels
        view = y.as_strided((n, c, h, 2, w, 2), (sn, sc, sh, 2 * c * sc + sh, sw, c * sc + sw), y.storage_offset())
        if not channels_last:
            return view.reshape(n, c, 2 * h, 2 * w)
        out = torch.empty((n, c, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=torch.channels_last)
        out.view(n, c, h, 2, w, 2).copy_(view)
        return out
    phase = [[y[:, (2 * a + b) * c:(2 * a + b + 1) * c, a:a + h, b:b + w] for b in (0, 1)] for a in (0, 1)]
    if not channels_last:
        return torch.stack([torch.stack(row, dim=-1) for row in phase], dim=-3).reshape(n, c, 2 * h, 2 * w)
    rows = [torch.stack([p.permute(0, 2, 3, 1) for p in row], dim=3) for row in phase]  # (n, h, w, b, c) each
    return torch.stack(rows, dim=2).reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)  # (n, h, a, w, b, c) underneath


# How compiled graphs compute the phases: "matmul" (`phases_as_matmul`), "conv" (the 2 x 2 convolution, as
# eager), or "auto": the matmul for >= 1,024 input channels on maps of >= 256 pixels, else the convolution.
# "auto" picks the faster form measured compiled, forward + input gradient (H100, bf16, `bench/bench_upsample.py`,
# BENCHMARKS.md): the matmul on 16 x 16 maps of 1,280 channels, the convolution on 8 x 8 maps and on 32 x 32 maps
# of 640 channels. Benchmarks pick another per module (`install_subpixel_upsamplers(..., form=...)`).
COMPILED_FORMS = ("auto", "conv", "matmul")


def compiled_form(x: torch.Tensor, form: str = "auto") -> str:
    """The form a compiled graph uses for input `x` (n, c_in, h, w): `form`, "auto" resolved."""
    if form != "auto":
        return form
    return "matmul" if x.shape[1] >= 1024 and x.shape[2] * x.shape[3] >= 256 else "conv"


def upsample_nearest_conv3x3(x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor | None = None,
                             form: str = "auto") -> torch.Tensor:
    """`conv(F.interpolate(x, scale_factor=2, mode="nearest"))` for a 3 x 3, stride-1, padding-1 `conv`.

    x: (n, c_in, h, w) -> (n, c_out, 2h, 2w), in x's memory layout. weight: `phase_weights(conv.weight)` if
    already made. Eager, the convolution runs through the conv's own `_conv_forward` (a `LeanConv2d` keeps its
    frozen-weight backward), with padding 1 on a 2 x 2 kernel; compiled, that or one matmul (`compiled_form`)."""
    weight = phase_weights(conv.weight) if weight is None else weight
    if torch.compiler.is_compiling() and compiled_form(x, form) == "matmul":
        return phases_as_matmul(x, weight, conv.bias)
    bias = conv.bias.repeat(4) if conv.bias is not None else None
    y = conv._conv_forward(x, weight, bias)  # (n, 4 * c_out, h + 1, w + 1)
    return interleave_phases(y, is_channels_last(x) or is_channels_last(y))


def phases_as_matmul(x: torch.Tensor, phases: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The four phases' 2 x 2 convolutions as one matmul over every (tap, phase) pair, then shifted sums.

    For compiled graphs: cuDNN runs the 2 x 2 convolution well below the GPU's matmul rate on 16 x 16 maps of
    1,280 channels; a (pixels x c_in) @ (c_in x 16 c_out) matmul is cuBLAS's best shape, and the compiler fuses
    the padding, the four shifted reads per output and the interleaving into one kernel.
    x: (n, c_in, h, w); phases: (4 * c_out, c_in, 2, 2) from `phase_weights` -> (n, c_out, 2h, 2w), channels-last."""
    n, c_in, h, w = x.shape
    c = phases.shape[0] // 4
    taps = phases.view(2, 2, c, c_in, 2, 2).permute(4, 5, 0, 1, 2, 3).reshape(16 * c, c_in)  # (dy, dx, a, b, c)
    y = F.linear(x.permute(0, 2, 3, 1).reshape(n * h * w, c_in), taps).view(n, h, w, 2, 2, 2, 2, c)
    y = F.pad(y, (0, 0) * 5 + (1, 1, 1, 1))  # (n, h + 2, w + 2, dy, dx, a, b, c): zeros around the map
    # phase (a, b) at (i, j) = sum over taps (dy, dx) of y at pixel (i + a + dy - 1, j + b + dx - 1), padded: + 1
    # summed in float32 with the bias, as the convolution accumulates (fused: no float32 tensor is stored)
    phase = [[sum(y[:, a + dy:a + dy + h, b + dx:b + dx + w, dy, dx, a, b].float() for dy in (0, 1) for dx in (0, 1))
              for b in (0, 1)] for a in (0, 1)]  # (n, h, w, c) each
    out = torch.stack([torch.stack(row, dim=3) for row in phase], dim=2).reshape(n, 2 * h, 2 * w, c)
    if bias is not None:
        out = out + bias.float()
    return out.to(y.dtype).permute(0, 3, 1, 2)


def supports_subpixel(module: nn.Module) -> bool:
    """Whether an `Upsample2D` is nearest 2x interpolation then a plain 3 x 3, stride-1, padding-1 convolution."""
    if not isinstance(module, Upsample2D) or module.use_conv_transpose or not module.use_conv:
        return False
    conv = module.conv if module.name == "conv" else module.Conv2d_0
    return (module.interpolate and module.norm is None and isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


class SubpixelUpsample2D(Upsample2D):
    """diffusers' `Upsample2D` computing nearest 2x upsampling + 3 x 3 convolution as four 2 x 2 convolutions
    (`upsample_nearest_conv3x3`). An explicit `output_size` other than twice the input keeps diffusers' code.
    `form`: how compiled graphs compute the phases (`COMPILED_FORMS`; set by `install_subpixel_upsamplers`)."""

    form = "auto"

    def forward(self, hidden_states: torch.Tensor, output_size: int | None = None, *args, **kwargs) -> torch.Tensor:
        size = (output_size, output_size) if isinstance(output_size, int) else output_size  # as F.interpolate reads it
        doubled = size is None or tuple(size) == tuple(2 * s for s in hidden_states.shape[-2:])
        if not doubled or args or kwargs:
            return super().forward(hidden_states, output_size, *args, **kwargs)
        if hidden_states.shape[1] != self.channels:
            raise ValueError(f"Upsample2D expects {self.channels} channels, got {hidden_states.shape[1]}")
        conv = self.conv if self.name == "conv" else self.Conv2d_0
        return upsample_nearest_conv3x3(hidden_states, conv, self._frozen_phase_weights(conv.weight), self.form)

    def _frozen_phase_weights(self, weight: torch.Tensor) -> torch.Tensor | None:
        """A frozen weight's phase filters, made once per weight version (eager calls: a dozen small
        kernels a call otherwise); None (made in the call) for trained weights and in compiled
        graphs, where it is fused and cheap. The cache holds the weight's storage, so its address cannot be
        reused by another weight while the key names it."""
        if weight.requires_grad or torch.compiler.is_compiling():
            return None
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device, is_channels_last(weight))
        cached = getattr(self, "_phase_cache", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = self._phase_cache = (key, weight.untyped_storage(), phase_weights(weight))
        return cached[2]


def install_subpixel_upsamplers(module: nn.Module, form: str = "auto") -> int:
    """Switch every supported `Upsample2D` under `module` to `SubpixelUpsample2D` in place, compiled in `form`
    (`COMPILED_FORMS`); returns how many were switched (installing again only sets the form)."""
    if form not in COMPILED_FORMS:
        raise ValueError(f"form must be one of {', '.join(COMPILED_FORMS)}, got {form!r}")
    switched = 0
    for child in module.modules():
        if type(child) is Upsample2D and supports_subpixel(child):
            child.__class__ = SubpixelUpsample2D
            switched += 1
        if type(child) is SubpixelUpsample2D:
            child.form = form
    return switched


def with_subpixel_upsamplers(module: M) -> M:
    """`module` with its supported `Upsample2D`s as `SubpixelUpsample2D`, `module` itself unchanged: a copy of its
    modules around the same parameters (`shared_parameter_copy`, no weight copied), or `module` where none is
    supported or all are switched already."""
    if not any(type(child) is Upsample2D and supports_subpixel(child) for child in module.modules()):
        return module
    copied = shared_parameter_copy(module)
    install_subpixel_upsamplers(copied)
    return copied
