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
    assert set(metrics["timings"]) == {"data", "autoencoder", "prepare", "image phase", "video phase", "eval"}
    assert all(math.isfinite(v) for v in metrics["held_out_loss"].values())
    assert metrics["ego_motion_agreement"]["reference"] == 1.0
    assert metrics["ego_motion_agreement"]["reference_reversed"] == 0.0
    assert (out / "eval" / "report.md").is_file()

    # As if the call had been cut off during the video phase: it and eval are not in stages.json.
    stages = json.loads((out / "stages.json").read_text())
    image_phase = stages["image phase"]
    stages.pop("video phase")
    stages.pop("eval")
    (out / "stages.json").write_text(json.dumps(stages))
    base_bytes = (out / "base" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    capsys.readouterr()
    assert experiment.main(["--smoke", "--out", str(out), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resumed after the image phase" in printed and "[experiment] autoencoder" not in printed
    assert (out / "base" / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == base_bytes
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["timings"]["image phase"] == image_phase["seconds"]
    assert "video phase" in json.loads((out / "stages.json").read_text())
