"""The noise prior shared across frames (noise_prior.py): each frame stays standard normal, the shared
parts are equal in every frame, and training, validation and sampling use the run's prior."""

import json

import pytest
import torch

from sdvideo.noise_prior import NoisePrior, lowpass_mask, mix_frame_noise, video_noise
from sdvideo.sampling.pipeline import default_fps
from sdvideo.sampling.sampler import initial_noise
from sdvideo.training.config import TrainConfig
from sdvideo.training.diffusion_loss import diffusion_loss


def test_independent_prior_draws_exactly_torch_randn() -> None:
    got = video_noise((2, 4, 3, 8, 8), NoisePrior(), torch.Generator().manual_seed(5))
    want = torch.randn((2, 4, 3, 8, 8), generator=torch.Generator().manual_seed(5))
    assert torch.equal(got, want)


@pytest.mark.parametrize("prior", [NoisePrior(share=0.5), NoisePrior(lowpass=0.0), NoisePrior(lowpass=0.125),
                                   NoisePrior(share=0.8, lowpass=0.25)])
def test_every_frame_keeps_unit_variance_and_frames_correlate_as_stated(prior) -> None:
    noise = video_noise((64, 4, 2, 16, 16), prior, torch.Generator().manual_seed(0))  # (b, c, f, h, w)
    assert abs(float(noise.mean())) < 0.02
    assert abs(float(noise.var()) - 1.0) < 0.03
    first, second = noise[:, :, 0].flatten(), noise[:, :, 1].flatten()
    correlation = float(torch.corrcoef(torch.stack([first, second]))[0, 1])
    shared_bins = float(lowpass_mask(16, 16, prior.lowpass, torch.device("cpu")).mean()) if prior.lowpass is not None else 0.0
    expected = shared_bins + (1 - shared_bins) * prior.share  # low band shared whole, the rest by `share`
    assert abs(correlation - expected) < 0.03


def test_shared_frequencies_are_identical_in_every_frame() -> None:
    own, shared = torch.randn(1, 4, 5, 16, 16), torch.randn(1, 4, 1, 16, 16)
    means = mix_frame_noise(own, shared, NoisePrior(lowpass=0.0)).mean(dim=(-2, -1))  # (1, 4, 5): per-frame means
    torch.testing.assert_close(means, shared.mean(dim=(-2, -1)).expand_as(means), rtol=0, atol=1e-5)
    low = NoisePrior(lowpass=0.125)
    mask = lowpass_mask(16, 16, 0.125, torch.device("cpu"))
    spectrum = torch.fft.fft2(mix_frame_noise(own, shared, low)) * mask
    torch.testing.assert_close(spectrum, (torch.fft.fft2(shared) * mask).expand_as(spectrum), rtol=0, atol=1e-3)
    # frequencies above the cut-off stay each frame's own
    high = torch.fft.fft2(mix_frame_noise(own, shared, low)) * (1 - mask)
    torch.testing.assert_close(high, torch.fft.fft2(own) * (1 - mask), rtol=0, atol=1e-3)


def test_bad_prior_options_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"noise share must be in \[0, 1\)"):
        NoisePrior(share=1.0)
    with pytest.raises(ValueError, match="noise lowpass"):
        NoisePrior(lowpass=-0.1)
    with pytest.raises(ValueError, match="noise share"):
        TrainConfig(data="d", base="b", out="o", noise_share=float("nan")).resolved()


def test_sampling_noise_is_per_video_and_follows_the_prior() -> None:
    prior = NoisePrior(share=0.5, lowpass=0.0)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    both = initial_noise((2, 4, 6, 8, 8), gens, torch.device("cpu"), torch.float32, prior)
    alone = initial_noise((1, 4, 6, 8, 8), torch.Generator().manual_seed(4), torch.device("cpu"), torch.float32, prior)
    assert torch.equal(both[1:], alone)  # a video does not depend on the rest of its batch
    means = both.mean(dim=(-2, -1))  # (2, 4, 6): the frames of a video share their means
    torch.testing.assert_close(means, means[:, :, :1].expand_as(means), rtol=0, atol=1e-5)


def test_the_training_loss_noises_clips_with_the_prior(monkeypatch) -> None:
    from diffusers import DDPMScheduler

    seen = {}

    def predict(noisy, t):
        seen["noisy"] = noisy
        return torch.zeros_like(noisy)

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    latents = torch.zeros(1, 4, 4, 8, 8)  # clean latents of zero: the noisy clip is the scaled noise
    diffusion_loss(predict, scheduler, latents, torch.Generator().manual_seed(0), noise_prior=NoisePrior(lowpass=0.0))
    means = seen["noisy"].mean(dim=(-2, -1))  # (1, 4, 4)
    torch.testing.assert_close(means, means[:, :, :1].expand_as(means), rtol=0, atol=1e-5)


def test_default_fps_is_a_rate_the_run_trained_at() -> None:
    assert default_fps({"cache_fps": 6.0, "stride": 1, "strides": [2, 4]}) == 3.0  # not 6: never trained at 6
    assert default_fps({"cache_fps": 20.0, "trained_fps": [20.0, 10.0, 5.0]}) == 20.0
    assert default_fps({"cache_fps": 10.0, "stride": 2}) == 5.0
    assert default_fps(json.loads('{"cache_fps": 8.0}')) == 8.0


def test_a_run_samples_with_the_noise_it_trained_with_by_default(tmp_path) -> None:
    from test_sampling_pipeline import load, make_run

    run = make_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "noise_share": 0.5, "noise_lowpass": 0.0,
                                                 "strides": [2], "trained_fps": [3.0]}))
    pipe = load(run)
    assert pipe.config.noise_prior == {"share": 0.5, "lowpass": 0.0} and pipe.config.default_fps == 3.0
    kw = dict(num_frames=3, num_inference_steps=2, guidance_scale=1.0, output_type="latent")
    default = pipe("a car", generator=torch.Generator().manual_seed(0), **kw).frames
    stated = pipe("a car", generator=torch.Generator().manual_seed(0), noise_prior=NoisePrior(share=0.5, lowpass=0.0),
                  **kw).frames
    independent = pipe("a car", generator=torch.Generator().manual_seed(0), noise_prior=NoisePrior(), **kw).frames
    assert torch.equal(default, stated) and not torch.allclose(default, independent)
