"""Shared fixtures: a tiny random Stable Diffusion on disk and a latent cache of a synthetic clip."""

import os
import sys
from pathlib import Path

import pytest
import torch

# Triton kernels (models/fused_frame_attention.py) run on the CPU through Triton's interpreter, which
# must be chosen before the kernels are defined (when sdvideo.models is first imported).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).parent))  # tests/media.py

import media  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and steady when other processes share the cores.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base():
    """A tiny random Stable Diffusion in memory (one per test module: tests may move or change it)."""
    from sdvideo.models.base import build_base

    return build_base("tiny", seed=0)


@pytest.fixture(scope="module")
def video_unet():
    """The tiny video UNet in eval mode with its temporal layers moved off their identity init, so they
    change the output (one per test module: tests may hook or compile it)."""
    import torch
    from diffusers import UNet2DConditionModel

    from sdvideo.models.presets import preset
    from sdvideo.models.video_unet import inflate

    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"])).eval()
    for p in video.temporal_parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return video


@pytest.fixture
def compile_calls(monkeypatch) -> list:
    """`VideoUNet.compile_regions` through dynamo + AOTAutograd without code generation (seconds on a
    CPU instead of inductor's minutes); returns the list of its calls' keyword options, in order."""
    from sdvideo.models.video_unet import VideoUNet

    calls = []
    original = VideoUNet.compile_regions

    def through_dynamo(self, **options):
        calls.append(options)
        return original(self, backend="aot_eager", **options)

    monkeypatch.setattr(VideoUNet, "compile_regions", through_dynamo)
    return calls


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    from sdvideo.models.base import build_base

    folder = tmp_path_factory.mktemp("tiny-base") / "base"
    build_base("tiny", seed=0).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, tiny_base_dir) -> Path:
    """Two synthetic clips (moving patterns) at 6 fps, 16 px -> 8x8 latents."""
    from sdvideo.data.prepare import prepare
    from sdvideo.models.base import load_base

    root = tmp_path_factory.mktemp("tiny-cache")
    clips = [media.write_video(root / f"clip{i}.mp4", frames=40, fps=12, width=40 + 8 * i, height=30, codec="libx264")
             for i in range(2)]
    summary = prepare(clips, root / "cache", load_base(tiny_base_dir), fps=6, size=16, caption="a moving square",
                      progress=False)
    assert summary.used == 2
    return root / "cache"
