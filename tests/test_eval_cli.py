"""`sdvideo eval` end to end on the tiny fixtures, equal losses at identity init, and bad input."""

import json
import math

import pytest
import torch

from sdvideo.cli import main
from sdvideo.eval.loss_buckets import bucket_losses, bucket_timesteps, image_predictor
from sdvideo.training.validation import video_predictor
from sdvideo.models.base import load_base
from sdvideo.models.video_unet import inflate
from sdvideo.training.config import TrainConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def make_run(folder, cache, base_dir, perturb=True):
    """A run folder as `sdvideo train` leaves it: config.json and unet/ (temporal weights perturbed)."""
    video = inflate(load_base(base_dir).unet)
    if perturb:
        torch.manual_seed(0)
        for p in video.temporal_parameters():
            torch.nn.init.normal_(p, std=0.02)
    video.save_pretrained(folder / "unet")
    cfg = TrainConfig(data=str(cache), base=str(base_dir), out=str(folder), frames=3, device="cpu")
    cfg.save(folder / "config.json", cache_fps=6.0, cache_size=16, latent_shape=[4, 8, 8])
    return folder


def test_identity_temporal_layers_give_equal_video_and_independent_losses(tiny_base_dir):
    base = load_base(tiny_base_dir)
    video = inflate(load_base(tiny_base_dir).unet).eval()  # temporal layers are identities at init
    gen = torch.Generator().manual_seed(0)
    latents, text = torch.randn(3, 4, 3, 8, 8, generator=gen), torch.randn(3, 77, 32, generator=gen)
    predictors = {"video": video_predictor(video, True), "independent": video_predictor(video, False),
                  "base": image_predictor(base.unet)}
    losses = bucket_losses(predictors, base.scheduler, latents, text, torch.full((3,), 6.0), buckets=3,
                           per_bucket=1, batch_size=2)
    assert losses["video"] == losses["independent"]  # exactly, bucket by bucket
    assert losses["base"] == pytest.approx(losses["independent"], rel=1e-5)
    assert len(losses["video"]) == 3 and all(math.isfinite(v) for v in losses["video"])
    assert losses["video"][0] != losses["video"][2]  # buckets measure different timesteps
    assert bucket_timesteps(1000, 5, 2)[0] == [50, 150] and bucket_timesteps(1000, 5, 2)[-1] == [850, 950]


def test_eval_cli_writes_report_and_metrics(tmp_path, tiny_cache, tiny_base_dir, capsys):
    run = make_run(tmp_path / "run", tiny_cache, tiny_base_dir)
    control = make_run(tmp_path / "frame-wise", tiny_cache, tiny_base_dir, perturb=False)
    out = tmp_path / "report"
    with pytest.warns(UserWarning, match="measured 2 clips of the 50 asked for"):
        code = main(["eval", "--run", str(run), "--data", str(tiny_cache), "--out", str(out), "--samples", "2",
                     "--steps", "2", "--buckets", "3", "--clips", "50", "--device", "cpu",
                     "--ego-prompt", "a moving square", "--control", str(control), "--free-init", "2",
                     "--eta", "1"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    losses = metrics["losses"]
    assert len(losses["buckets"]) == 3 and losses["clips"] == 2 and losses["clips_asked"] == 50
    # an identity-initialised control computes the frame-independent model exactly
    assert losses["control frame-wise"] == losses["independent"]
    assert {"video vs independent", "shuffled vs video", "video vs control frame-wise"} <= set(losses["differences"])
    for key in ("video", "independent", "base", "shuffled"):
        assert len(losses[key]) == 3 and all(math.isfinite(v) for v in losses[key])
    assert losses["video"] != losses["independent"]  # perturbed temporal layers matter
    for group in ("real", "video", "independent"):
        stats = metrics["motion"][group]
        assert stats["clips"] == 2
        assert all(math.isfinite(stats[k]) and stats[k] >= 0 for k in ("warp_error", "flicker", "flow_magnitude"))
    ego = metrics["ego_motion"]
    assert ego["reference"]["rate"] == 1.0 and ego["reference_reversed"]["rate"] == 0.0
    assert ego["video"]["clips"] == 2 and 0.0 <= ego["video"]["rate"] <= 1.0
    assert metrics["prompts"] == ["a moving square"] * 2 and metrics["seeds"] == [0, 1]
    assert metrics["free_init"] == 2 and metrics["eta"] == 1.0
    report = (out / "report.md").read_text()
    assert "DDIM with eta 1 (fresh noise at each step, from the noise prior); the video model's with FreeInit, 2 " \
        "samplings each" in report
    assert set(metrics["shape_consistency"]) == {"real", "video", "independent"}
    for group in ("real", "video", "independent"):
        look = metrics["appearance"][group]
        assert look["clips"] == 2 and look["colourfulness"] >= 0 and look["contrast"] > 0 and look["diversity"] >= 0
    for part in ("loss by timestep", "Motion statistics", "Ego-motion check", "grid.png", "flow_statistics.png",
                 "Paired differences", "Shape consistency", "Colour, contrast, detail and diversity", "comparison.gif"):
        assert part in report
    for name in ("loss_by_timestep.png", "flow_statistics.png", "grid.png", "ego_grid.png", "comparison.gif"):
        assert (out / name).stat().st_size > 1000
    assert "held-out loss: video" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path, tiny_cache, tiny_base_dir, capsys):
    (tmp_path / "norun").mkdir()
    assert main(["eval", "--run", str(tmp_path / "norun"), "--data", str(tiny_cache), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no config.json" in err and str(tmp_path / "norun") in err
    run = make_run(tmp_path / "run", tiny_cache, tiny_base_dir, perturb=False)
    missing = tmp_path / "nothing-here"
    capsys.readouterr()  # drop the progress bars of loading the base above
    assert main(["eval", "--run", str(run), "--data", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(missing) in err and "no such cache or video" in err
    # --clip is checked as load_clip checks it (config.json), before any model loads or sampling starts
    assert main(["eval", "--run", str(run), "--data", str(tiny_cache), "--out", str(tmp_path / "o"),
                 "--clip", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a CLIP model folder" in err and not (tmp_path / "o" / "report.md").exists()
