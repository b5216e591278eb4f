"""VideoPipeline on a tiny random run: arguments, output types, determinism, save/load, schedulers."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sdvideo.models.base import build_base
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.pipeline import VideoPipeline


def make_run(root, condition_channels=0, seed=1):
    """A fake training run: tiny base in root/base (shared), RUN/config.json and RUN/unet.

    The temporal (and condition) weights are perturbed so that they matter.
    """
    base_dir = root / "base"
    base = build_base("tiny", seed=0)
    if not base_dir.exists():
        base.save(base_dir)
    run = root / f"run{condition_channels}"
    video = inflate(base.unet, condition_channels=condition_channels)
    torch.manual_seed(seed)
    for p in video.temporal_parameters():
        torch.nn.init.normal_(p, std=0.02)
    if condition_channels:
        torch.nn.init.normal_(video.frame_conditioning.proj.weight, std=0.05)
    video.save_pretrained(run / "unet")
    config = {"base": str(base_dir), "cache_fps": 6.0, "cache_size": 16, "stride": 1, "frames": 3}
    (run / "config.json").write_text(json.dumps(config))
    return run


pytestmark = pytest.mark.usefixtures("one_thread")


def load(run):
    pipe = VideoPipeline.from_pretrained(run)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return load(make_run(tmp_path_factory.mktemp("sampling-pipeline")))


def test_shapes_frame_counts_and_output_types(pipe):
    # Two prompts, more frames than the 3 trained with (relative positions), training size by default.
    out = pipe(["a red car", "a dog"], num_frames=5, num_inference_steps=2, seed=0)
    assert out.frames.shape == (2, 5, 3, 16, 16)
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    latent = pipe("x", num_frames=2, num_inference_steps=2, seed=0, output_type="latent").frames
    assert latent.shape == (1, 4, 2, 8, 8)
    array = pipe("x", num_frames=2, num_inference_steps=2, seed=0, output_type="np").frames
    assert array.shape == (1, 2, 16, 16, 3) and array.dtype == np.float32
    pil = pipe("x", num_frames=2, height=24, width=16, num_inference_steps=2, seed=0, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 2 and isinstance(pil[0][0], Image.Image)
    assert pil[0][0].size == (16, 24)
    assert pipe.config.default_fps == 6.0 and pipe.config.trained_frames == 3
    # Defaults: the frames trained with.
    assert pipe("x", num_inference_steps=1, seed=0, output_type="latent").frames.shape[2] == 3


def test_deterministic_for_a_seed_and_per_prompt_seeds(pipe):
    kw = dict(num_frames=3, num_inference_steps=2, output_type="latent", negative_prompt="blurry")
    a = pipe("a", seed=3, **kw).frames
    b = pipe("a", seed=3, **kw).frames
    c = pipe("a", seed=4, **kw).frames
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = pipe("a", generator=torch.Generator().manual_seed(3), **kw).frames
    assert torch.equal(a, g)
    # One seed per prompt: a video does not depend on the rest of its batch.
    both = pipe(["b", "a"], seed=[7, 3], **kw).frames
    assert torch.allclose(both[1:], a, atol=1e-5)


def test_negative_prompt_guidance_and_fps_reach_the_model(pipe):
    kw = dict(num_frames=3, num_inference_steps=2, seed=0, output_type="latent")
    base = pipe("a", **kw).frames  # guidance 7.5, empty negative prompt, training fps 6
    assert not torch.allclose(base, pipe("a", negative_prompt="blurry", **kw).frames, atol=1e-4)
    assert not torch.allclose(base, pipe("a", guidance_scale=2.0, **kw).frames, atol=1e-4)
    assert pipe.unet.config.fps_conditioning
    assert torch.equal(base, pipe("a", fps=6.0, **kw).frames)  # the default is the training rate
    assert not torch.allclose(base, pipe("a", fps=24.0, **kw).frames, atol=1e-4)


def test_save_and_load_pretrained_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == "VideoPipeline" and index["unet"][1] == "VideoUNet"
    loaded = load(tmp_path / "saved")
    assert loaded.config.default_fps == 6.0 and loaded.config.default_size == 16
    kw = dict(num_frames=3, num_inference_steps=2, seed=1, output_type="latent")
    assert torch.equal(loaded("a", **kw).frames, pipe("a", **kw).frames)


@pytest.mark.parametrize("name", ["dpm++", "euler", "euler-a", "ddpm", "EulerDiscreteScheduler"])
def test_any_scheduler_by_name_is_deterministic(pipe, name):
    pipe.set_scheduler(name)
    try:
        kw = dict(num_frames=2, num_inference_steps=2, seed=0, output_type="latent")
        a, b = pipe("a", **kw).frames, pipe("a", **kw).frames
        assert torch.equal(a, b) and torch.isfinite(a).all()
    finally:
        pipe.set_scheduler("ddim")


def test_bad_arguments_raise_one_line_errors(pipe):
    with pytest.raises(ValueError, match="unknown scheduler"):
        pipe.set_scheduler("nope")
    with pytest.raises(ValueError, match="output_type"):
        pipe("a", num_inference_steps=1, output_type="gif")
    with pytest.raises(ValueError, match="multiples of 2"):
        pipe("a", num_inference_steps=1, height=15)
    with pytest.raises(ValueError, match="seeds"):
        pipe(["a", "b"], num_inference_steps=1, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="prompt"):
        pipe(num_inference_steps=1)
