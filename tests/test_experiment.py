"""bench/experiment.py in its smoke size: every stage runs, and --resume skips the finished ones."""

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import experiment  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()  # the smoke size sets one thread for the process
    yield
    torch.set_num_threads(threads)


def test_smoke_experiment_then_resume_after_the_image_phase(tmp_path, capsys):
    out = tmp_path / "exp"
    assert experiment.main(["--smoke", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"data", "autoencoder", "prepare", "image phase", "video phase",
                                      "capacity control", "eval"}
    for part in ("unseen", "tails"):
        losses = metrics[part]["losses"]
        assert all(math.isfinite(losses[f"{k}/mean"]) for k in ("video", "independent", "shuffled", "capacity control"))
    assert metrics["unseen"]["ego_motion"]["reference"]["rate"] == 1.0
    assert metrics["unseen"]["ego_motion"]["reference_reversed"]["rate"] == 0.0
    assert all(isinstance(row["holds"], bool) for row in metrics["acceptance"].values())
    windowed = metrics["sampling_checks"]["windowed"]  # 2 x sample_frames in windows, tiling shifted and fixed
    for tiling in (windowed, windowed["fixed"]):
        assert len(tiling["pair_profile"]) == windowed["frames"] - 1 and tiling["worst_pair_vs_median"] >= 1.0
        assert all(math.isfinite(tiling[k]) for k in ("seam_warp_error", "inside_warp_error"))
    # the shifted tiling (what `sample --window` makes by default) is at the top, and it is what the targets judge
    assert metrics["acceptance"]["32 frames: seams <= 1.2x inside windows"]["value"] == pytest.approx(
        windowed["seam_warp_error"] / windowed["inside_warp_error"])
    assert (out / "eval-unseen" / "report.md").is_file() and (out / "eval-unseen" / "comparison.gif").is_file()
    for run in ("run", "control"):  # validation curves of training clips, held-out tails and unseen videos
        sets = {line.split(",")[1] for line in (out / run / "validation.csv").read_text().splitlines()[1:]}
        assert sets == {"training", "held-out", "unseen"}

    # As if the call had been cut off during the video phase: it and what follows are not in stages.json.
    stages = json.loads((out / "stages.json").read_text())
    image_phase = stages["image phase"]
    for later in ("video phase", "capacity control", "eval"):
        stages.pop(later)
    (out / "stages.json").write_text(json.dumps(stages))
    base_bytes = (out / "base" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    capsys.readouterr()
    # ... and evaluated with another noise prior shared across frames (--noise-share / --noise-lowpass) and
    # another loss weighting and learning rate, its samples with FreeInit
    assert experiment.main(["--smoke", "--out", str(out), "--resume", "--noise-share", "0.5", "--noise-lowpass",
                            "0.125", "--min-snr-gamma", "5", "--lr", "2e-3", "--no-control", "--free-init", "2", "--eta", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "resumed after the image phase" in printed and "[experiment] autoencoder" not in printed
    assert (out / "base" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == base_bytes
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["stages"]["image phase"]["seconds"] == image_phase["seconds"]
    assert "video phase" in json.loads((out / "stages.json").read_text()) and "capacity control" not in resumed["stages"]
    assert resumed["settings"]["noise_share"] == 0.5 and resumed["settings"]["noise_lowpass"] == 0.125
    assert resumed["settings"]["free_init"] == 2 and resumed["unseen"]["free_init"] == resumed["tails"]["free_init"] == 2
    assert resumed["settings"]["eta"] == 0.5 and resumed["unseen"]["eta"] == resumed["tails"]["eta"] == 0.5
    run_config = json.loads((out / "run" / "config.json").read_text())  # train records the prior and the fps trained
    assert (run_config["noise_share"], run_config["noise_lowpass"], run_config["trained_fps"],
            run_config["min_snr_gamma"], run_config["lr"]) == (0.5, 0.125, [20.0, 10.0], 5.0, 2e-3)
    losses = resumed["unseen"]["losses"]
    assert losses["noise"] == ("0.5 of the variance shared by all frames, "
                               "spatial frequencies up to 0.125 cycles/pixel shared")
    assert math.isfinite(losses["independent noise"]["video/mean"])  # also measured without the prior
    known = resumed["sampling_checks"]["interpolation"]["real"]
    assert known["clips"] >= 1 and all(math.isfinite(known[k]) for k in ("model", "blend", "repeat", "autoencoder"))
    looks = resumed["appearance_vs_real"]  # colour, contrast, diversity of the samples as multiples of the real clips'
    assert looks["real"] == {"colourfulness": 1.0, "contrast": 1.0, "detail": 1.0, "diversity": 1.0}
    assert all(looks[g]["contrast"] > 0 for g in ("video", "independent"))


def test_a_missing_real_clip_stops_the_run_before_any_stage(tmp_path):
    source = tmp_path / "clips"
    source.mkdir()
    for name in experiment.TRAIN_CLIPS:  # the unseen clip is missing
        (source / name).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"carphone_pristine\.mp4: no such clip; --clips must hold .*"
                                                r"fetch_device_wheels\.sh"):
        experiment.run(tmp_path / "out", "smoke", clips=str(source))
    assert not (tmp_path / "out" / "stages.json").exists()  # nothing rendered or trained first


def test_train_scenes_and_image_steps_define_the_base(tmp_path):
    out = tmp_path / "more-scenes"
    assert experiment.main(["--smoke", "--out", str(out), "--train-scenes", "4", "--image-steps", "2",
                             "--until", "image phase"]) == 0
    stages = json.loads((out / "stages.json").read_text())
    assert stages["data"]["train_videos"] == 4 + len(experiment.TRAIN_CLIPS)  # the smoke scale renders 3
    assert stages["image phase"]["steps"] == 2  # the smoke scale trains 3
    # a variant of the video phase reuses a base: options that would change that base are refused
    assert experiment.main(["--smoke", "--out", str(tmp_path / "variant"), "--from-base", str(out),
                            "--image-steps", "3"]) == 2
    assert not (tmp_path / "variant").exists()
