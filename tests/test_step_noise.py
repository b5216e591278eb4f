"""Stochastic sampling: the fresh noise of DDIM with eta > 0 and of DPM++ SDE follows the run's noise prior, as the
starting noise does; `sample --eta` and its errors."""

import functools

import pytest
import torch

from sdvideo.cli import main
from sdvideo.noise_prior import NoisePrior
from sdvideo.sampling.sample import check_sample_options, make_scheduler, sample
from sdvideo.sampling.sampler import adds_noise_per_step
from test_sampling_pipeline import load, make_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return load(make_run(tmp_path_factory.mktemp("step-noise")))


def test_which_schedulers_add_noise_the_caller_supplies(pipe):
    config = pipe.scheduler.config
    assert not adds_noise_per_step(make_scheduler("ddim", config), 0.0)
    assert adds_noise_per_step(make_scheduler("ddim", config), 0.5)
    assert adds_noise_per_step(make_scheduler("dpm++-sde", config), 0.0)
    for name in ("dpm++", "euler", "euler-a", "ddpm"):
        assert not adds_noise_per_step(make_scheduler(name, config), 1.0), name


@pytest.mark.parametrize("scheduler,eta", [("ddim", 1.0), ("dpm++-sde", 0.0)])
def test_the_fresh_noise_of_each_step_shares_the_frame_means(pipe, monkeypatch, scheduler, eta):
    pipe.set_scheduler(scheduler)
    step, fresh = pipe.scheduler.step, []

    @functools.wraps(step)  # keeps step's signature, which the sampler reads
    def recorded(*args, variance_noise=None, **kwargs):
        fresh.append(variance_noise)
        return step(*args, variance_noise=variance_noise, **kwargs)

    monkeypatch.setattr(pipe.scheduler, "step", recorded)
    means_shared = NoisePrior(lowpass=0.0)
    kw = dict(num_frames=4, num_inference_steps=3, seed=[5, 6], eta=eta, noise_prior=means_shared)
    first = pipe(["a road", "a beach"], **kw).frames
    assert len(fresh) == 3 and all(n is not None and n.shape[:3] == (2, 4, 4) for n in fresh)
    for noise in fresh:
        means = noise.float().mean(dim=(-2, -1))  # (b, c, f): every frame's spatial mean per channel
        assert torch.allclose(means, means[:, :, :1].expand_as(means), atol=1e-5)
        assert noise.float().std() > 0.5  # the rest is fresh per frame
    assert not torch.equal(fresh[0], fresh[1])  # new noise at every step
    assert torch.equal(pipe(["a road", "a beach"], **kw).frames, first)  # deterministic for the seeds
    alone = pipe(["a beach"], **{**kw, "seed": [6]}).frames[0]  # a video's noise comes from its own generator
    assert torch.allclose(alone, first[1], atol=1e-4)  # (batched matmuls round differently)
    pipe.set_scheduler("ddim")


def test_eta_zero_stays_deterministic_and_eta_changes_the_video(pipe, monkeypatch):
    pipe.set_scheduler("ddim")
    kw = dict(num_frames=4, num_inference_steps=3, seed=0)
    plain = pipe("a road", **kw).frames
    assert not torch.equal(pipe("a road", eta=1.0, **kw).frames, plain)
    step, fresh = pipe.scheduler.step, []
    monkeypatch.setattr(pipe.scheduler, "step", functools.wraps(step)(
        lambda *a, **k: fresh.append(k.get("variance_noise")) or step(*a, **k)))
    assert torch.equal(pipe("a road", **kw).frames, plain) and fresh == [None] * 3


def test_sample_option_eta(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--eta must be"):
        check_sample_options(tmp_path / "out", eta=-0.5)
    with pytest.raises(ValueError, match=r"--eta 1.0 needs a scheduler with eta, such as --scheduler ddim"):
        sample(tmp_path / "missing-run", ["x"], tmp_path / "out", scheduler="euler-a", eta=1.0)
    seen = []
    monkeypatch.setattr("sdvideo.sampling.sample.sample", lambda *a, **k: seen.append(k["eta"]) or {"files": []})
    for flag in ([], ["--eta", "0.5"]):
        assert main(["sample", "--run", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "o"), *flag]) == 0
    assert seen == [0.0, 0.5]
