"""Every bad option is one line: exit status 2, `sdvideo CMD: error: ...` naming the option (or file) and
the fix, no traceback, and before any model is loaded (the runs, bases and caches given with the bad
option do not exist, so a check that came after a load would fail with another message).

docs/reliability.md lists these cases and what sdvideo does in each."""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib

import pytest

import media
from sdvideo import cli
from sdvideo.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def refused(capsys, argv, *parts):
    """Run the CLI; assert exit 2 and one error line holding every part; return that line."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    line = err.strip()
    assert "Traceback" not in err and "\n" not in line, err
    assert line.startswith(f"sdvideo {argv[0]}: error: "), line
    for part in parts:
        assert str(part) in line, (part, line)
    return line


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    """A short clip, a file where a folder is expected, a self-referencing link and an empty base folder."""
    root = tmp_path_factory.mktemp("bad-options")
    media.write_video(root / "clip.mp4", frames=6, fps=12, width=20, height=16, codec="libx264")
    (root / "a-file").write_text("not a folder")
    os.symlink("loop.mp4", root / "loop.mp4")
    (root / "base").mkdir()
    return root


@pytest.fixture(scope="module")
def damaged_run(media_dir):
    """A run folder whose unet/ safetensors file is cut in half (a copy interrupted, a full disk)."""
    from diffusers import UNet2DConditionModel

    from sdvideo.models.presets import preset
    from sdvideo.models.video_unet import inflate

    run = media_dir / "damaged-run"
    inflate(UNet2DConditionModel(**preset("tiny")["unet"])).save_pretrained(run / "unet")
    weights = run / "unet" / "diffusion_pytorch_model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    (run / "config.json").write_text(json.dumps({"base": str(media_dir / "base"), "cache_fps": 6.0, "cache_size": 16,
                                                 "frames": 3}))
    return run


# ---------------------------------------------------------------- train: TrainConfig.resolved()

def train_argv(root, *extra, out=None):
    return ["train", "--data", root / "no-cache", "--base", root / "no-base", "--out", out or root / "run-new",
            "--steps", "1", "--device", "cpu", *extra]


@pytest.mark.parametrize("flags, message", [
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer of at least 1, got 0"),
    (["--log-every", "0"], "--log-every must be an integer of at least 1, got 0"),
    (["--lr", "inf"], "--lr must be a finite number above 0"),
    (["--lr", "nan"], "--lr must be a finite number above 0"),
    (["--ema-decay", "1.5"], "--ema-decay must be a finite number in [0, 1) (0 turns EMA off"),
    (["--strides", "1", "0"], "--strides must be an integer of at least 1, got 0"),
])
def test_train_option_out_of_range(media_dir, capsys, flags, message):
    refused(capsys, train_argv(media_dir, *flags), message)


def test_train_out_is_a_file(media_dir, capsys):
    refused(capsys, train_argv(media_dir, out=media_dir / "a-file"), f"--out {media_dir / 'a-file'} is a file")


def test_train_config_refuses_the_same_in_python():
    from sdvideo.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"--ema-decay must be a finite number in \[0, 1\)"):
        TrainConfig(data="x", base="y", out="z", ema_decay=1.5, device="cpu").resolved()


# ---------------------------------------------------------------- prepare

def prepare_argv(root, *inputs, out=None, extra=()):
    return ["prepare", *(inputs or [root / "clip.mp4"]), "--out", out or root / "cache-new", "--base",
            root / "no-base", "--size", "16", "--no-progress", *extra]


@pytest.mark.parametrize("flags, message", [
    (["--fps", "0"], "--fps must be a finite number above 0 (frames per second, e.g. 10), got 0.0"),
    (["--fps", "-5"], "--fps must be a finite number above 0"),
    (["--fps", "nan"], "--fps must be a finite number above 0"),
    (["--size", "0"], "--size must be an integer of at least 1"),
])
def test_prepare_option_out_of_range(media_dir, capsys, flags, message):
    refused(capsys, prepare_argv(media_dir, extra=flags), message)
    assert not (media_dir / "cache-new" / "cache.json").exists()


def test_prepare_out_is_a_file(media_dir, capsys):
    refused(capsys, prepare_argv(media_dir, out=media_dir / "a-file"), f"--out {media_dir / 'a-file'} is a file")


def test_prepare_self_referencing_symlink(media_dir, capsys):
    refused(capsys, prepare_argv(media_dir, media_dir / "loop.mp4"), f"{media_dir / 'loop.mp4'}: symbolic link loop")


def test_prepare_jsonl_caption_that_is_not_text(media_dir, capsys):
    manifest = media_dir / "numbers.jsonl"
    manifest.write_text(json.dumps({"path": "clip.mp4", "caption": 5}) + "\n")
    refused(capsys, prepare_argv(media_dir, manifest),
            f'{manifest}:1: "caption" must be a string or a list of strings, got 5', 'e.g. "caption": "5"')


def test_prepare_csv_manifest_end_inf_skips_the_row(media_dir):
    """A row is data, not an option: like a negative time, a non-finite one skips that row with a warning
    naming the line (never `Infinity` in the cache's journal)."""
    from sdvideo.data.prepare import check_prepare_options
    from sdvideo.data.sources import collect_jobs

    manifest = media_dir / "inf.csv"
    manifest.write_text("path,caption,start,end\nclip.mp4,a clip,0,inf\nclip.mp4,a clip,0,0.25\n")
    check_prepare_options([manifest], media_dir / "cache-new")  # the manifest itself is readable
    warnings = []
    jobs = collect_jobs([manifest], "", warnings.append)
    assert [(j.start, j.end) for j in jobs] == [(0.0, 0.25)]
    (warning,) = warnings
    assert f"{manifest}:2: skipping manifest row" in warning and "'inf' is not a finite time in seconds" in warning


def test_prepare_refuses_the_same_in_python(media_dir):
    from sdvideo.data.prepare import prepare

    with pytest.raises(ValueError, match="--fps must be a finite number above 0"):
        prepare([media_dir / "clip.mp4"], media_dir / "cache-new", base=None, fps=float("nan"))  # base never read


# ---------------------------------------------------------------- sample

def sample_argv(root, *flags, out=None, run=None):
    return ["sample", "--run", run or root / "no-run", "--prompt", "x", "--out", out or root / "samples",
            "--steps", "1", "--device", "cpu", *flags]


@pytest.mark.parametrize("flags, message", [
    (["--fps", "0"], "--fps must be a finite number above 0"),
    (["--fps", "-5"], "--fps must be a finite number above 0"),
    (["--fps", "nan"], "--fps must be a finite number above 0"),
    (["--decode-chunk", "0"], "--decode-chunk must be an integer of at least 1"),
    (["--size", "0"], "--size must be an integer of at least 1"),
    (["--size", "64x0"], "--size must be an integer of at least 1 (N or WxH in pixels"),
    (["--size", "64x"], "--size must be N or WxH in pixels (e.g. 512 or 768x432), got '64x'"),
    (["--guidance-scale", "nan"], "--guidance-scale must be a finite number"),
])
def test_sample_option_out_of_range(media_dir, capsys, flags, message):
    refused(capsys, sample_argv(media_dir, *flags), message)


def test_sample_out_is_a_file(media_dir, capsys):
    refused(capsys, sample_argv(media_dir, out=media_dir / "a-file"), f"--out {media_dir / 'a-file'} is a file")


def test_sample_out_under_a_read_only_folder(media_dir, capsys, monkeypatch):
    """A read-only mount (EROFS) or a folder of another user: os.access says no (simulated: tests run as root)."""
    read_only = media_dir / "read-only"
    read_only.mkdir(exist_ok=True)
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(read_only)
                        else real(path, mode, **kw))
    refused(capsys, sample_argv(media_dir, out=read_only / "samples"), "permission denied",
            f"cannot write in {read_only}")


def png_header(width, height):
    """A PNG that claims width x height pixels: Pillow reads the size from it without decoding anything."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side, message", [
    (15000, "image is above the limit of 67,108,864 pixels"),  # beyond Pillow's own decompression-bomb limit
    (9000, "image is 9000 x 9000 pixels, above the limit of 67,108,864 pixels"),  # beyond ours only
])
def test_sample_image_too_large(media_dir, capsys, side, message):
    image = media_dir / f"huge-{side}.png"
    image.write_bytes(png_header(side, side))
    refused(capsys, sample_argv(media_dir, "--image", image), f"{image}: {message}", "scale it down")


def test_sample_refuses_the_same_in_python(media_dir):
    from sdvideo.sampling.sample import sample

    with pytest.raises(ValueError, match="--decode-chunk must be an integer of at least 1"):
        sample(media_dir / "no-run", ["x"], media_dir / "samples", decode_chunk_size=0, device="cpu")


# ---------------------------------------------------------------- interpolate

def test_interpolate_fps_zero(media_dir, capsys):
    refused(capsys, ["interpolate", media_dir / "clip.mp4", "--run", media_dir / "no-run", "--out",
                     media_dir / "x2.mp4", "--fps", "0", "--device", "cpu"], "--fps must be a finite number above 0")


def test_interpolate_out_file_under_a_file(media_dir, capsys):
    refused(capsys, ["interpolate", media_dir / "clip.mp4", "--run", media_dir / "no-run", "--out",
                     media_dir / "a-file" / "x2.mp4"], f"{media_dir / 'a-file'} is a file, not a folder")


# ---------------------------------------------------------------- eval

def eval_argv(root, *flags, run=None, out=None):
    return ["eval", "--run", run or root / "no-run", "--data", root / "no-cache", "--out", out or root / "report",
            "--device", "cpu", *flags]


@pytest.mark.parametrize("flags, message", [
    (["--samples", "0", "--clips", "0"], "--samples must be an integer of at least 1, got 0"),
    (["--clips", "0"], "--clips must be an integer of at least 1, got 0"),
    (["--frames", "0"], "--frames must be an integer of at least 1"),
    (["--guidance-scale", "inf"], "--guidance-scale must be a finite number"),
])
def test_eval_option_out_of_range(media_dir, capsys, flags, message):
    refused(capsys, eval_argv(media_dir, *flags), message)


def test_eval_out_is_a_file(media_dir, capsys):
    refused(capsys, eval_argv(media_dir, out=media_dir / "a-file"), f"--out {media_dir / 'a-file'} is a file")


# ---------------------------------------------------------------- damaged run weights

@pytest.mark.parametrize("command", ["sample", "interpolate", "eval"])
def test_truncated_unet_weights(media_dir, damaged_run, capsys, command):
    argv = {"sample": sample_argv(media_dir, run=damaged_run),
            "interpolate": ["interpolate", media_dir / "clip.mp4", "--run", damaged_run, "--out",
                            media_dir / "x2.mp4", "--device", "cpu"],
            "eval": eval_argv(media_dir, run=damaged_run)}[command]
    weights = damaged_run / "unet" / "diffusion_pytorch_model.safetensors"
    # the run's base folder is empty: the weights are refused before the base would load (and fail)
    refused(capsys, argv, f"{weights}: the run's weights are damaged", "--resume")


def test_damaged_weights_from_the_loader_are_one_line_too(damaged_run, monkeypatch):
    """Past the header check (a file damaged another way), diffusers' loader error becomes the same ValueError."""
    import contextlib

    from sdvideo.sampling import pipeline

    monkeypatch.setattr(pipeline, "safe_open", lambda *a, **k: contextlib.nullcontext())
    with pytest.raises(ValueError, match="diffusion_pytorch_model.safetensors: the run's weights are damaged"):
        pipeline.load_video_unet(damaged_run)


# ---------------------------------------------------------------- OS errors in cli.main

@pytest.mark.parametrize("command, error, message", [
    ("train", OSError(errno.ENOSPC, "No space left on device", "RUN/checkpoints/step-000500.tmp/ema.safetensors"),
     "disk full while writing RUN/checkpoints/step-000500.tmp/ema.safetensors: free space and run it again with "
     "--resume (the run can be resumed"),
    ("prepare", OSError(errno.ENOSPC, "No space left on device"), "disk full while writing OUT: free space"),
    ("sample", RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                            '"No space left on device" })'),
     "disk full while writing OUT: free space and run it again"),
    ("sample", PermissionError(errno.EACCES, "Permission denied", "OUT/grid.png"),
     "permission denied: OUT/grid.png; choose another --out"),
    ("eval", OSError(errno.EROFS, "Read-only file system", "OUT/report.md"),
     "permission denied: OUT/report.md (read-only file system)"),
])
def test_os_errors_are_one_line(monkeypatch, capsys, tmp_path, command, error, message):
    out = tmp_path / "out"
    args = error.args
    if isinstance(error, OSError) and error.filename:
        error = type(error)(args[0], args[1], error.filename.replace("OUT", str(out)).replace("RUN", str(out)))

    def fails(_args):
        raise error

    monkeypatch.setattr(cli, f"run_{command}", fails)
    argv = {"train": ["train", "--data", "d", "--base", "b", "--out", out],
            "prepare": ["prepare", "v.mp4", "--base", "b", "--out", out],
            "sample": ["sample", "--run", "r", "--prompt", "x", "--out", out],
            "eval": ["eval", "--run", "r", "--data", "d", "--out", out]}[command]
    refused(capsys, argv, message.replace("OUT", str(out)).replace("RUN", str(out)))


def test_out_file_found_while_writing(monkeypatch, capsys, tmp_path):
    (tmp_path / "taken").write_text("")

    def fails(_args):
        (tmp_path / "taken").mkdir(parents=True, exist_ok=True)  # FileExistsError

    monkeypatch.setattr(cli, "run_sample", fails)
    refused(capsys, ["sample", "--run", "r", "--prompt", "x", "--out", tmp_path / "taken"],
            f"--out {tmp_path / 'taken'} is a file; pass a folder")


def test_bugs_keep_their_traceback(monkeypatch):
    def fails(_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "run_sample", fails)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["sample", "--run", "r", "--prompt", "x", "--out", "o"])
