"""`sdvideo prepare` on the command line: flags reach prepare, the summary line, the exit status
(non-zero only when nothing usable came out), and `train` refusing a cache made with another base."""

from __future__ import annotations

import pytest
import torch

import media
from sdvideo.cli import main
from sdvideo.data.cache import load_cache_info
from sdvideo.data.encoder import pick_device
from sdvideo.models.base import build_base


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Two saved tiny bases that differ only in their (random) weights."""
    root = tmp_path_factory.mktemp("cli_bases")
    build_base("tiny", seed=0).save(root / "base0")
    build_base("tiny", seed=1).save(root / "base1")
    return root


def prepare_cli(videos, out, base, *extra):
    return main(["prepare", *map(str, videos), "--out", str(out), "--base", str(base), "--fps", "10",
                 "--size", "16", "--caption", "squares", "--no-progress", *extra])


def test_summary_warnings_and_exit_status(bases, tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    media.write_video(d / "good.mkv", 30, 30, 32, 24)  # 10 frames at 10 fps
    (d / "zero.mp4").write_bytes(b"")
    media.write_audio_only(d / "audio.mp4")
    assert prepare_cli([d], tmp_path / "cache", bases / "base0") == 0  # skipped videos alone: success
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == (f"prepared {tmp_path / 'cache'}: 1 videos used (1 new), 2 skipped, "
                                           "10 frames, 6 clips of 5 frames, 0.00 h")
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2
    assert any(str(d / "zero.mp4") in w and "empty file" in w for w in warnings)
    assert any(str(d / "audio.mp4") in w and "no video stream" in w for w in warnings)

    assert prepare_cli([d / "zero.mp4", d / "audio.mp4"], tmp_path / "empty", bases / "base0") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sdvideo prepare: error: no usable video")
    assert sum(ln.startswith("warning: skipping") for ln in err) == 2


def test_flags_reach_prepare(bases, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    media.write_video(d / "cut.mkv", 60, 30, 48, 36, cut_at=[25, 41])  # 20 frames, shots 0-9-14-20
    media.write_video(d / "short.mkv", 21, 30, 48, 36)  # 7 frames
    assert prepare_cli([d], tmp_path / "plain", bases / "base0", "--scene-threshold", "0", "--clip-frames", "8",
                       "--workers", "1", "--shard-mb", "0.003", "--device", "cpu") == 0
    info = load_cache_info(tmp_path / "plain")
    assert [v["segments"] for v in info["videos"]] == [[[0, 20]]]  # no cut detection
    assert [s["source"] for s in info["skipped"]] == [str((d / "short.mkv").resolve())]  # < 8 frames
    assert prepare_cli([d], tmp_path / "cuts", bases / "base0") == 0  # default threshold finds the cuts
    segments = {v["source"]: v["segments"] for v in load_cache_info(tmp_path / "cuts")["videos"]}
    assert segments[str((d / "cut.mkv").resolve())] == [[0, 9], [9, 14], [14, 20]]


def test_train_refuses_a_cache_of_another_base(bases, tmp_path, capsys):
    clip = media.write_video(tmp_path / "clip.mkv", 30, 30, 32, 24)
    assert prepare_cli([clip], tmp_path / "cache", bases / "base0") == 0
    capsys.readouterr()
    code = main(["train", "--data", str(tmp_path / "cache"), "--base", str(bases / "base1"),
                 "--out", str(tmp_path / "run"), "--steps", "1", "--frames", "3", "--device", "cpu"])
    (err,) = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]  # one line (+ load bars)
    assert code == 2 and err.startswith("sdvideo train: error:")
    assert "prepared with another base model: VAE differs" in err and str(bases / "base0") in err


def test_pick_device_prefers_half_precision_on_gpu():
    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)
    assert pick_device("cuda") == (torch.device("cuda"), torch.float16)  # no GPU needed to decide
    assert pick_device("cuda", torch.bfloat16)[1] == torch.bfloat16
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device()[0].type == want
