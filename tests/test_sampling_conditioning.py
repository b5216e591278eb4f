"""Masked-frame conditioning: training masks, the zero-initialised input channels, and sampling with
known frames (interpolation, extension, image-to-video) by mask channels or by replacement."""

import copy

import numpy as np
import pytest
import torch

import sdvideo
from sdvideo.models.video_unet import VideoUNet
from sdvideo.sampling.conditioning import (
    extension_condition,
    image_condition,
    interpolation_condition,
)
from sdvideo.training.frame_masks import TASKS, condition_channels_for, known_frames, make_frame_condition
from test_sampling_pipeline import load, make_run
from test_video_unet import frame_by_frame, tiny_unet

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------- training masks
def test_training_conditions_carry_known_latents_and_mask():
    latents = torch.randn(6, 4, 8, 3, 3)
    g = torch.Generator().manual_seed(0)
    expected = {"image2video": [0], "none": []}
    for task in TASKS:
        cond = make_frame_condition(latents, task, g)
        assert cond.shape == (6, 5, 8, 3, 3)
        mask = cond[:, 4, :, 0, 0]  # (b, f)
        assert set(cond[:, 4].unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(cond[:, :4], latents * cond[:, 4:5])  # known frames' latents, zeros elsewhere
        assert (mask.sum(1) < 8).all()  # always something to generate
        if task in expected:
            assert all(torch.nonzero(m).flatten().tolist() == expected[task] for m in mask)
        if task == "extend":  # a prefix of 1..7 frames
            assert all(m[: int(m.sum())].all() and m.sum() >= 1 for m in mask)
    assert condition_channels_for("none") == 0 and condition_channels_for("mixed") == 5
    with pytest.raises(ValueError, match="--task"):
        make_frame_condition(latents, "inpaint", g)


def test_interpolation_masks_and_mixed_draws_are_seeded():
    seen = {tuple(known_frames("interpolate", 9, torch.Generator().manual_seed(s)).nonzero().flatten().tolist())
            for s in range(40)}
    assert seen == {(0, 2, 4, 6, 8), (0, 4, 8), (0, 8)}  # every 2nd, every 4th, first and last
    a = make_frame_condition(torch.randn(4, 4, 5, 2, 2), "mixed", torch.Generator().manual_seed(3))
    b = make_frame_condition(torch.ones(4, 4, 5, 2, 2), "mixed", torch.Generator().manual_seed(3))
    assert torch.equal(a[:, 4], b[:, 4])


# ---------------------------------------------------------------------- the extra input channels
@pytest.mark.parametrize("frames", [1, 4])
def test_condition_channels_start_as_an_exact_identity(frames):
    unet = tiny_unet()
    reference = copy.deepcopy(unet)
    video = sdvideo.inflate(unet, condition_channels=5).eval()
    x, t, text = torch.randn(2, 4, frames, 8, 8), torch.tensor([10, 700]), torch.randn(2, 7, 32)
    with torch.no_grad():
        expected = frame_by_frame(reference, x, t, text)
        plain = video(x, t, text, fps=6.0).sample
        conditioned = video(x, t, text, fps=6.0, conditioning=torch.randn(2, 5, frames, 8, 8)).sample
    assert (plain - expected).abs().max() <= 1e-5 and (conditioned - expected).abs().max() <= 1e-5
    # The condition weights are new layers: the image model's weights keep their plain names.
    assert set(video.spatial_state_dict()) == set(reference.state_dict())


def test_condition_channels_train_save_and_load(tmp_path):
    video = sdvideo.inflate(tiny_unet(), condition_channels=5).eval()
    torch.nn.init.normal_(video.frame_conditioning.proj.weight, std=0.1)
    x, text, cond = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 7, 32), torch.randn(1, 5, 3, 8, 8)
    with torch.no_grad():
        assert (video(x, 5, text, conditioning=cond).sample - video(x, 5, text).sample).abs().max() > 1e-4
    video.save_pretrained(tmp_path)
    loaded = VideoUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.condition_channels == 5
    with torch.no_grad():
        assert torch.equal(loaded(x, 5, text, conditioning=cond).sample, video(x, 5, text, conditioning=cond).sample)
    with pytest.raises(ValueError, match="conditioning must be"):
        video(x, 5, text, conditioning=torch.randn(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="condition_channels=0"):
        sdvideo.inflate(tiny_unet())(x, 5, text, conditioning=cond)


# ---------------------------------------------------------------------- inference layouts
def test_known_frame_layouts():
    video = torch.randn(1, 4, 3, 2, 2)
    interp = interpolation_condition(video, 4)
    assert interp.frames == 9 and interp.known.nonzero().flatten().tolist() == [0, 4, 8]
    assert torch.equal(interp.latents[:, :, ::4], video)
    ext = extension_condition(video, 5)
    assert ext.frames == 8 and ext.known.tolist() == [True] * 3 + [False] * 5
    img = image_condition(video[:, :, 0], 6)
    assert img.frames == 6 and img.known.tolist() == [True] + [False] * 5
    assert img.channels().shape == (1, 5, 6, 2, 2)
    with pytest.raises(ValueError, match="--factor"):
        interpolation_condition(video, 1)


# ---------------------------------------------------------------------- sampling with known frames
@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling-conditioning")
    return {"replace": load(make_run(root, 0)), "mask": load(make_run(root, 5))}


@pytest.mark.parametrize("method", ["replace", "mask"])
@pytest.mark.parametrize("mode", ["interpolate", "extend", "image2video"])
def test_known_frames_stay_unchanged_and_sampling_is_deterministic(pipes, method, mode):
    pipe = pipes[method]
    pixels = (np.random.default_rng(0).random((3, 16, 16, 3)) * 255).astype(np.uint8)
    known = pipe.encode_video(pixels)  # (1, 4, 3, 8, 8)
    kw = dict(num_inference_steps=3, seed=0, output_type="latent", condition_method=method)
    if mode == "interpolate":
        run = lambda: pipe.interpolate(pixels, 2, "a", **kw).frames  # noqa: E731
        frames, positions = 5, [0, 2, 4]
    elif mode == "extend":
        run = lambda: pipe.extend(pixels, ["a", "b"], new_frames=3, guidance_scale=3.0, **kw).frames  # noqa: E731
        frames, positions = 6, [0, 1, 2]
    else:
        run = lambda: pipe.image_to_video(pixels[0], "a", num_frames=4, **kw).frames  # noqa: E731
        frames, positions, known = 4, [0], known[:, :, :1]
    out = run()
    assert out.shape[2] == frames and torch.equal(out, run())
    assert torch.allclose(out[:, :, positions], known.expand(out.shape[0], -1, -1, -1, -1), atol=1e-6)
    unknown = [i for i in range(frames) if i not in positions]
    assert torch.isfinite(out[:, :, unknown]).all()


def test_conditioning_changes_the_generated_frames(pipes):
    for method, pipe in pipes.items():
        pixels = (np.random.default_rng(1).random((2, 16, 16, 3)) * 255).astype(np.uint8)
        kw = dict(num_inference_steps=3, seed=0, output_type="latent", condition_method=method)
        a = pipe.extend(pixels, "a", new_frames=2, **kw).frames[:, :, 2:]
        b = pipe.extend(255 - pixels, "a", new_frames=2, **kw).frames[:, :, 2:]
        assert (a - b).abs().max() > 1e-4, method


def test_mask_method_needs_condition_channels(pipes):
    pixels = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="--task"):
        pipes["replace"].extend(pixels, "a", new_frames=2, num_inference_steps=1, condition_method="mask")
    with pytest.raises(ValueError, match="--factor"):
        pipes["replace"].interpolate(pixels, 1)
