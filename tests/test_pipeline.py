"""prepare -> train -> sample through the CLI on a tiny random base and a synthetic clip."""

import contextlib
import io
import json
import re

import av
import numpy as np
import pytest
import torch

from sdvideo.cli import main
from sdvideo.models.base import build_base
from sdvideo.models.video_unet import VideoUNet
from sdvideo.training.config import TrainConfig
import media


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    build_base("tiny", seed=0).save(root / "base")
    media.write_video(root / "clip.mp4", frames=24, fps=12, width=40, height=30, codec="libx264")
    assert main(["prepare", str(root / "clip.mp4"), "--out", str(root / "cache"), "--base", str(root / "base"),
                 "--fps", "6", "--size", "16", "--caption", "a moving square"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(workspace):
    """(run folder, what `train` printed): the tests below read one run, trained once per worker process."""
    run, printed = workspace / "run", io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "--data", str(workspace / "cache"), "--base", str(workspace / "base"), "--out", str(run),
                     "--frames", "3", "--steps", "4", "--batch-size", "2", "--device", "cpu"])
    assert code == 0
    return run, printed.getvalue()


def test_train_writes_model_config_and_loss(trained):
    run, printed = trained
    config = json.loads((run / "config.json").read_text())
    assert config["frames"] == 3 and config["mixed_precision"] == "no" and config["cache_fps"] == 6.0
    # every auto choice is recorded as resolved, and said once
    assert (config["optimizer"], config["compile"], config["gradient_checkpointing"]) == ("adamw", "off", "none")
    assert config["strides"] == [1] and "stride" not in config and "compile_regions" not in config
    assert "auto chose: --mixed-precision no, --optimizer adamw, --gradient-checkpointing none, --compile off" \
        in printed
    assert (run / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (run / "loss.png").stat().st_size > 0
    assert len((run / "loss.csv").read_text().splitlines()) == 5
    assert list((run / "logs").iterdir())  # TensorBoard event file


def test_training_moves_only_temporal_weights(workspace, trained):
    from sdvideo.models.base import load_base

    model = VideoUNet.from_pretrained(trained[0] / "unet")
    base_unet = load_base(workspace / "base").unet
    spatial = model.spatial_state_dict()
    assert all(torch.equal(spatial[k], v) for k, v in base_unet.state_dict().items())
    moved = [n for n, p in model.named_parameters() if ".temporal." in n and not torch.all(p == 0)]
    assert moved


def test_sample_writes_decodable_videos_longer_than_training(workspace, trained):
    out = workspace / "samples"
    code = main(["sample", "--run", str(trained[0]), "--prompt", "a moving square", "--prompt", "another",
                 "--out", str(out), "--frames", "7", "--steps", "3", "--device", "cpu"])
    assert code == 0
    mp4s = sorted(out.glob("*.mp4"))
    assert len(mp4s) == 2 and len(list(out.glob("*.gif"))) == 2 and (out / "grid.png").exists()
    with av.open(str(mp4s[0])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 6.0
    assert len(frames) == 7 and frames[0].shape[:2] == (16, 16)
    from PIL import Image

    grid = Image.open(out / "grid.png")
    assert grid.width >= 7 * 16 and grid.height >= 2 * 16


def test_sampling_is_deterministic_for_a_seed(workspace, trained):
    from sdvideo.sampling.sample import sample

    run = trained[0]
    a = sample(run, ["x"], workspace / "s1", frames=4, steps=2, seed=3, device="cpu", progress=False)
    b = sample(run, ["x"], workspace / "s2", frames=4, steps=2, seed=3, device="cpu", progress=False)
    c = sample(run, ["x"], workspace / "s3", frames=4, steps=2, seed=4, device="cpu", progress=False)
    assert torch.equal(a["videos"], b["videos"]) and not torch.equal(a["videos"], c["videos"])


def test_train_dry_run_prints_options_and_counts(workspace, capsys):
    code = main(["train", "--data", str(workspace / "cache"), "--base", str(workspace / "base"),
                 "--out", str(workspace / "dry"), "--dry-run"])
    assert code == 0
    text = capsys.readouterr().out
    assert '"frames": 5' in text and "trainable" in text and "frozen" in text
    # the default --gradient-checkpointing auto, resolved (on the CPU: none) and said so
    assert '"gradient_checkpointing": "none"' in text and "gradient checkpointing none (auto: the fastest that fits)" in text
    # every auto choice resolved for this machine (the CPU), and said in one line
    assert '"optimizer": "adamw"' in text and '"compile": "off"' in text and '"auto"' not in text
    assert "auto chose: --device cpu, --mixed-precision no, --optimizer adamw, --gradient-checkpointing none, " \
           "--compile off" in text
    most = re.search(r"estimated most frames at batch \d+ within 24.0 GiB \(a 24 GiB card; planning for 92% of it[^)]*\): (\d+)", text)
    assert most and int(most.group(1)) > 5  # the tiny test model fits far more frames than it trains with
    assert "with --lora-rank" not in text  # the LoRA estimate's caveat only where it applies
    assert not (workspace / "dry" / "unet").exists()
    # --temporal-embedding reaches the model (as --temporal-head-dim and --no-fps-conditioning do): more
    # temporal parameters, off by default
    temporal = lambda out: float(re.search(r"temporal ([\d.]+) M", out).group(1))  # noqa: E731
    assert '"temporal_embedding": false' in text
    assert main(["train", "--data", str(workspace / "cache"), "--base", str(workspace / "base"),
                 "--out", str(workspace / "dry"), "--dry-run", "--temporal-embedding"]) == 0
    embedded = capsys.readouterr().out
    assert '"temporal_embedding": true' in embedded and temporal(embedded) > temporal(text)


def test_dry_run_estimates_the_run_itself_once(workspace, monkeypatch):
    from sdvideo.training import dry_run, memory_estimate

    traced = []
    original = memory_estimate.estimate_training_memory

    def counting(**options):
        traced.append((options["frames"], options["gradient_checkpointing"]))
        return original(**options)

    monkeypatch.setattr(memory_estimate, "estimate_training_memory", counting)
    monkeypatch.setattr(dry_run, "estimate_training_memory", counting)
    monkeypatch.setattr(dry_run, "gpu_budget", lambda: (1e-3, "a tiny card"))  # the advice must run too
    text = dry_run.describe(TrainConfig(data=str(workspace / "cache"), base=str(workspace / "base"), out="unused",
                                        frames=5))
    assert "exceeds" in text  # the warning line was built ...
    assert traced.count((5, "none")) == 1  # ... from the estimate already printed, not a second trace


def test_memory_warning_names_what_fits(workspace):
    from sdvideo.training.dry_run import memory_warning
    from sdvideo.training.train import build_video_unet

    cfg = TrainConfig(data=str(workspace / "cache"), base=str(workspace / "base"), out="unused", frames=5).resolved()
    video, _ = build_video_unet(cfg)
    latent = json.loads((workspace / "cache" / "cache.json").read_text())["latent_shape"][-1]
    assert memory_warning(cfg, video.unet.config, latent, budget_gib=24.0) is None  # `sdvideo train` stays quiet
    warning = memory_warning(cfg, video.unet.config, latent, budget_gib=1e-3)
    assert warning.startswith("estimated peak") and "--frames" in warning and "\n" not in warning


def test_bad_inputs_give_one_line_errors(workspace, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--base", str(workspace / "base"),
                 "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err
    assert main(["sample", "--run", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.json" in err
    assert main(["prepare", str(workspace / "clip.mp4"), "--out", str(tmp_path / "c"),
                 "--base", str(tmp_path / "missing-base")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing-base" in err


def test_train_refuses_more_frames_than_videos_have(workspace, tmp_path):
    config = TrainConfig(data=str(workspace / "cache"), base=str(workspace / "base"), out=str(tmp_path / "r"),
                         frames=500, steps=1, device="cpu")
    from sdvideo.training.train import train

    with pytest.raises(ValueError, match="500"):
        train(config, progress=False)


def test_diffusion_loss_targets_match_schedule():
    from diffusers import DDPMScheduler

    from sdvideo.training.diffusion_loss import training_target

    latents, noise = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    t = torch.tensor([10, 900])
    eps = DDPMScheduler(prediction_type="epsilon")
    v = DDPMScheduler(prediction_type="v_prediction")
    assert torch.equal(training_target(eps, latents, noise, t), noise)
    a = eps.alphas_cumprod[t].sqrt().view(2, 1, 1, 1, 1)
    s = (1 - eps.alphas_cumprod[t]).sqrt().view(2, 1, 1, 1, 1)
    assert torch.allclose(training_target(v, latents, noise, t), a * noise - s * latents, atol=1e-6)
    np.testing.assert_allclose(eps.add_noise(latents, noise, t).numpy(), (a * latents + s * noise).numpy(), atol=1e-6)
