"""FreeInit: its low-pass filters against a loop over FreeInit's own grid, the noise re-initialisation's
frequency split, the pipeline's iterations, and the `sample --free-init` option."""

import math

import pytest
import torch

from sdvideo.cli import main
from sdvideo.sampling.free_init import FreeInit, low_pass_filter, reinitialize
from sdvideo.sampling.sample import check_sample_options
from test_sampling_pipeline import load, make_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return load(make_run(tmp_path_factory.mktemp("free-init")))


def reference_filter(frames, height, width, options):
    """FreeInit's definition, bin by bin on the centred (fftshift) grid where 2 i / n - 1 runs over [-1, 1)."""
    ds, dt = options.spatial_stop_frequency, options.temporal_stop_frequency
    mask = torch.zeros(frames, height, width, dtype=torch.float64)
    for t in range(frames):
        for y in range(height):
            for x in range(width):
                d2 = ((ds / dt) * (2 * t / frames - 1)) ** 2 + (2 * y / height - 1) ** 2 + (2 * x / width - 1) ** 2
                if options.method == "butterworth":
                    mask[t, y, x] = 1 / (1 + (d2 / ds**2) ** options.order)
                else:
                    mask[t, y, x] = math.exp(-d2 / (2 * ds**2))
    return torch.fft.ifftshift(mask)  # back to torch.fft.fftn's bin order


@pytest.mark.parametrize("method,order", [("butterworth", 4), ("butterworth", 1), ("gaussian", 4)])
@pytest.mark.parametrize("stops", [(0.25, 0.25), (0.4, 0.5)])
def test_low_pass_filters_match_freeinits_definition(method, order, stops):
    options = FreeInit(method=method, order=order, spatial_stop_frequency=stops[0], temporal_stop_frequency=stops[1])
    mine = low_pass_filter(8, 12, 16, options).double()
    assert torch.allclose(mine, reference_filter(8, 12, 16, options), atol=1e-6)
    assert mine[0, 0, 0] == 1.0  # zero frequency kept whole


def test_filters_at_the_stop_frequency_and_at_nyquist():
    half, corner = (0, 0, 2), (4, 6, 8)  # 16 px wide: bin 2 is 0.25 of Nyquist; (4, 6, 8): Nyquist on every axis
    shape = (8, 12, 16)
    butterworth = low_pass_filter(*shape, FreeInit())
    assert butterworth[half] == pytest.approx(0.5) and butterworth[corner] < 1e-5
    gaussian = low_pass_filter(*shape, FreeInit(method="gaussian"))
    assert gaussian[half] == pytest.approx(math.exp(-0.5)) and gaussian[corner] < 1e-6
    ideal = low_pass_filter(*shape, FreeInit(method="ideal"))
    assert ideal[half] == 1.0 and ideal[0, 0, 3] == 0.0 and set(ideal.unique().tolist()) == {0.0, 1.0}
    # symmetric in +-f on every axis, so that filtering a real signal's spectrum gives a real signal
    flipped = butterworth[(-torch.arange(8))[:, None, None] % 8, (-torch.arange(12))[None, :, None] % 12,
                          (-torch.arange(16))[None, None, :] % 16]
    assert torch.equal(butterworth, flipped)


def test_reinitialize_keeps_the_diffused_low_frequencies_and_takes_the_rest_from_fresh_noise():
    g = torch.Generator().manual_seed(0)
    clean, first, fresh = (torch.randn(2, 4, 8, 12, 16, generator=g) for _ in range(3))
    options = FreeInit(method="ideal", spatial_stop_frequency=0.4, temporal_stop_frequency=0.5)
    alpha_bar = 0.0047
    out = reinitialize(clean, first, fresh, alpha_bar, options)
    assert out.dtype == torch.float32 and out.shape == clean.shape
    keep = low_pass_filter(8, 12, 16, options).bool()
    assert 1 < keep.sum() < keep.numel()
    spectrum = torch.fft.fftn(out.double(), dim=(-3, -2, -1))
    diffused = math.sqrt(alpha_bar) * clean.double() + math.sqrt(1 - alpha_bar) * first.double()
    low = torch.fft.fftn(diffused, dim=(-3, -2, -1))
    high = torch.fft.fftn(fresh.double(), dim=(-3, -2, -1))
    assert torch.allclose(spectrum[..., keep], low[..., keep], atol=1e-3)
    assert torch.allclose(spectrum[..., ~keep], high[..., ~keep], atol=1e-3)


def test_reinitialize_takes_noise_drawn_on_the_cpu_for_latents_on_another_device():
    # The pipeline draws its noise on the CPU (seeded generators) while the latents live on the GPU; the meta device
    # stands in for the GPU here, with the same device check.
    clean = torch.empty(1, 4, 4, 8, 8, device="meta")
    first, fresh = torch.randn(1, 4, 4, 8, 8), torch.randn(1, 4, 4, 8, 8, dtype=torch.float16)
    out = reinitialize(clean, first, fresh, 0.0047, FreeInit())
    assert out.device.type == "meta" and out.dtype == torch.float32 and out.shape == clean.shape


def test_options_are_checked():
    for bad, words in ((dict(num_iters=0), "num_iters"), (dict(num_iters=2.0), "num_iters"),
                       (dict(method="box"), "butterworth, gaussian, ideal"), (dict(order=0), "order"),
                       (dict(spatial_stop_frequency=0.0), "spatial_stop_frequency"),
                       (dict(temporal_stop_frequency=1.5), "temporal_stop_frequency")):
        with pytest.raises(ValueError, match=words):
            FreeInit(**bad)
    assert [FreeInit(use_fast_sampling=True).steps(25, i) for i in range(3)] == [8, 16, 25]
    assert [FreeInit().steps(25, i) for i in range(3)] == [25, 25, 25]


def test_pipeline_samples_again_from_the_last_videos_low_frequencies(pipe, monkeypatch):
    kw = dict(num_frames=4, num_inference_steps=3, seed=0)
    plain = pipe("a road", **kw).frames
    assert torch.equal(pipe.enable_free_init(num_iters=1)("a road", **kw).frames, plain)  # one iteration: plain
    options = dict(method="ideal", spatial_stop_frequency=0.5, temporal_stop_frequency=0.5)
    pipe.enable_free_init(num_iters=2, **options)
    twice = pipe("a road", **kw).frames
    assert torch.isfinite(twice).all() and not torch.equal(twice, plain)
    assert torch.equal(pipe("a road", **kw).frames, twice)  # deterministic for a seed

    import sdvideo.sampling.pipeline as pipeline_module

    calls, denoise = [], pipeline_module.denoise_video

    def recorded(*args, latents=None, **kwargs):
        clean = denoise(*args, latents=latents, **kwargs)
        calls.append((args[6], latents.clone(), clean.clone()))  # (steps, start noise, clean latents)
        return clean

    monkeypatch.setattr(pipeline_module, "denoise_video", recorded)
    pipe.enable_free_init(num_iters=3, use_fast_sampling=True, **options)
    pipe("a road", num_frames=4, num_inference_steps=6, seed=0)
    assert [c[0] for c in calls] == [2, 4, 6]  # coarse to fine
    (_, first, clean1), (_, second, _) = calls[0], calls[1]
    a = float(pipe.scheduler.alphas_cumprod[-1])
    diffused = math.sqrt(a) * clean1.double() + math.sqrt(1 - a) * first.double()
    keep = low_pass_filter(*first.shape[-3:], FreeInit(**options)).bool()
    dims = (-3, -2, -1)
    assert torch.allclose(torch.fft.fftn(second.double(), dim=dims)[..., keep],
                          torch.fft.fftn(diffused, dim=dims)[..., keep], atol=1e-3)
    monkeypatch.undo()
    pipe.disable_free_init()
    assert not pipe.free_init_enabled and torch.equal(pipe("a road", **kw).frames, plain)


def test_sample_option_free_init(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--free-init must be an integer of at least 1"):
        check_sample_options(tmp_path / "out", free_init=0)
    seen = []
    monkeypatch.setattr("sdvideo.sampling.sample.sample", lambda *a, **k: seen.append(k["free_init"]) or {"files": []})
    for flag in ([], ["--free-init", "3"]):
        assert main(["sample", "--run", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "o"), *flag]) == 0
    assert seen == [None, 3]


def test_eval_uses_free_init_for_the_video_model_only(pipe, tmp_path):
    from sdvideo.eval.evaluate import check_eval_options, generate

    kw = dict(prompts=["a road"], seeds=[0], frames=4, steps=2, guidance_scale=3.0)
    once, twice = generate(pipe, enable_time=True, **kw), generate(pipe, enable_time=True, free_init=2, **kw)
    assert once[0].shape == (4, 16, 16, 3) and not (once[0] == twice[0]).all()
    assert (generate(pipe, enable_time=False, free_init=2, **kw)[0] == generate(pipe, enable_time=False, **kw)[0]).all()
    with pytest.raises(ValueError, match="--free-init must be an integer of at least 1"):
        check_eval_options(tmp_path / "out", free_init=-1)
