"""`sdvideo train --task interpolate` trains the masked-frame conditioning channels, and the model it
writes loads and raises a video's frame rate through `sdvideo interpolate` (tiny model, few steps)."""

import json

import av
import pytest
import torch

import media
from sdvideo.cli import main
from sdvideo.models.base import load_base
from sdvideo.models.video_unet import VideoUNet
from sdvideo.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def task_run(tmp_path_factory, tiny_cache, tiny_base_dir):
    run = tmp_path_factory.mktemp("task") / "run"
    code = main(["train", "--data", str(tiny_cache), "--base", str(tiny_base_dir), "--out", str(run), "--task",
                 "interpolate", "--frames", "5", "--steps", "3", "--batch-size", "2", "--lr", "1e-2",
                 "--ema-decay", "0", "--device", "cpu"])
    assert code == 0
    return run


def test_task_trains_the_zero_initialised_condition_channels(task_run, tiny_base_dir):
    assert json.loads((task_run / "config.json").read_text())["task"] == "interpolate"
    video = VideoUNet.from_pretrained(task_run / "unet")
    assert video.config.condition_channels == 4 + 1  # latents + mask
    # The projection starts at zero; it only moves if training fed it known frames and a mask.
    assert video.frame_conditioning.proj.weight.abs().max() > 0
    # The image model stays frozen.
    spatial = video.spatial_state_dict()
    assert all(torch.equal(spatial[k], v) for k, v in load_base(tiny_base_dir).unet.state_dict().items())


def test_trained_interpolation_model_interpolates_through_the_cli(task_run, tmp_path, capsys):
    clip = media.write_video(tmp_path / "clip.mp4", frames=3, fps=5, width=24, height=16, codec="libx264")
    out = tmp_path / "x3.mp4"
    assert main(["interpolate", str(clip), "--run", str(task_run), "--factor", "3", "--condition", "mask",
                 "--steps", "2", "--out", str(out), "--device", "cpu"]) == 0
    assert str(out) in capsys.readouterr().out
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 15.0  # 5 fps x 3
    assert len(frames) == (3 - 1) * 3 + 1 and frames[0].shape == (16, 16, 3)  # the run's 16 px training size


def test_unknown_task_is_a_one_line_error(tmp_path, tiny_cache, tiny_base_dir):
    with pytest.raises(ValueError, match="--task 'inpaint'"):
        TrainConfig(data=str(tiny_cache), base=str(tiny_base_dir), out=str(tmp_path), task="inpaint").resolved()
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["train", "--data", str(tiny_cache), "--base", str(tiny_base_dir), "--out", str(tmp_path),
              "--task", "inpaint"])
