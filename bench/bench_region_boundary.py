"""A compiled resnet region feeding a compiled spatio-temporal transformer region (SD 1.5's first level:
320 channels, 64 x 64 latents, 2 x 16 frames, channels-last, selective checkpointing, bf16 autocast),
forward + backward, with and without `GradientInInputLayout`: the transformer's input gradient in the
resnet output's layout, or plainly contiguous (which AOTAutograd then copies at the region boundary).
Since run 27 the swap also takes it from the convolutions' outputs (`LeanConv2d.channels_last_io`).

    python bench/bench_region_boundary.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_unet import build_sdvideo  # noqa: E402
from gpu_timing import time_forward_backward  # noqa: E402

from sdvideo.models import layout  # noqa: E402


class PlainIdentity(torch.autograd.Function):
    """The identity with an untouched gradient: the transformer as it was before GradientInInputLayout.
    (Swapped in for the class, not for `.apply`: dynamo traces an autograd.Function's own forward/backward.)"""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    with torch.device("cuda"):  # the benchmark's SD 1.5-size model: frozen weights in bf16
        video, _ = build_sdvideo({"checkpointing": "selective"})
    video.to_channels_last()
    ctx = video.frame_context
    ctx.num_frames, ctx.enable_time, ctx.fps = args.frames, True, None
    resnet, attn = video.unet.down_blocks[0].resnets[0], video.unet.down_blocks[0].attentions[0]
    bf = 2 * args.frames
    x = torch.randn(bf, 320, 64, 64, device="cuda").to(memory_format=torch.channels_last).requires_grad_(True)
    temb, text = torch.randn(bf, 1280, device="cuda"), torch.randn(bf, 77, 768, device="cuda")
    strides = {}

    def step(x):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            h = resnet(x, temb)
            h.register_hook(lambda g: strides.__setitem__("grad", g.stride()))
            strides["out"] = h.stride()
            return attn(h, encoder_hidden_states=text).sample

    layout_fn = layout.GradientInInputLayout
    rows = []
    for name, keep in (("contiguous input gradient", False), ("GradientInInputLayout", True)):
        layout.GradientInInputLayout = layout_fn if keep else PlainIdentity
        torch._dynamo.reset()
        resnet.compile(dynamic=False)
        attn.compile(dynamic=False)
        ms = time_forward_backward(step, x)
        row = dict(variant=name, ms=ms, resnet_out_stride=strides["out"], its_gradient_stride=strides["grad"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    layout.GradientInInputLayout = layout_fn
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
