"""`sdvideo demo` end to end in its quick mode (5 steps per phase) on the real bundled clip."""

import json

import av
import numpy as np
from PIL import Image

from sdvideo.demo import run_demo


def test_quick_demo_writes_video_grid_and_loss_plots(tmp_path):
    summary = run_demo(tmp_path / "demo", quick=True)
    out = tmp_path / "demo"
    assert json.loads((out / "summary.json").read_text())["frames_decoded"] == summary["frames_decoded"] == 53
    assert set(summary["timings"]) == {"autoencoder", "prepare", "image phase", "video phase", "held-out loss", "sample"}
    held_out = json.loads((out / "summary.json").read_text())["held_out_loss"]
    assert held_out["clips"] == 4 and held_out["video"] > 0 and held_out["independent"] > 0  # the clip's last 8 frames
    assert (out / "samples" / "frames-independent.mp4").stat().st_size > 0  # the baseline, beside the video model's
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[1] > 8 * 96 and grid.std() > 0  # 8 frames side by side, not blank
    for name in ("loss.png", "loss_image.png", "loss_autoencoder.png"):
        assert (out / name).stat().st_size > 1000
    mp4 = next((out / "samples").glob("00-*.mp4"))
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (96, 96, 3)
