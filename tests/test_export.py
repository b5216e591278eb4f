"""Sample exporters: mp4 / gif / png grid read back with PyAV and Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import media
from sdvideo.sampling.export import (
    atomic_path,
    read_video_frames,
    to_uint8_frames,
    write_gif,
    write_grid,
    write_mp4,
)


def frames(n=8, w=32, h=24):
    return np.stack([media.pattern(k, w, h) for k in range(n)])  # uint8 (T, H, W, 3)


def test_to_uint8_frames():
    x = torch.rand(3, 3, 5, 7)  # float (T, 3, H, W) in [0, 1]
    out = to_uint8_frames(x)
    assert out.shape == (3, 5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    u = frames(2)
    assert to_uint8_frames(u) is not None and np.array_equal(to_uint8_frames(u), u)
    clamped = to_uint8_frames(torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1))
    assert clamped.ravel().tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="frames must"):
        to_uint8_frames(np.zeros((2, 4, 5, 5)))


@pytest.mark.parametrize("fps", [10, 12.5])
def test_mp4_round_trip(tmp_path, fps):
    x = frames(8, 32, 24)
    path = write_mp4(x, tmp_path / "a.mp4", fps)
    got, got_fps = read_video_frames(path)
    assert got.shape == x.shape and got_fps == fps
    assert np.abs(np.array([media.index_of(f) for f in got]) - np.arange(8)).max() <= 1  # lossy
    assert np.abs(got.astype(int) - x.astype(int)).mean() < 6
    assert not (tmp_path / "a.mp4.tmp").exists()


def test_mp4_odd_size_is_padded_to_even(tmp_path):
    x = frames(5, 33, 27)
    got, fps = read_video_frames(write_mp4(torch.from_numpy(x).permute(0, 3, 1, 2) / 255.0,
                                           tmp_path / "odd.mp4", 8))
    assert got.shape == (5, 28, 34, 3) and fps == 8
    assert np.abs(got[:, :27, :33].astype(int) - x.astype(int)).mean() < 6


def test_gif(tmp_path):
    x = frames(6, 33, 27)
    path = write_gif(x, tmp_path / "a.gif", 10)
    got, fps = read_video_frames(path)
    assert got.shape == (6, 27, 33, 3) and fps == 10
    assert [media.index_of(f) for f in got] == list(range(6))
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.info["loop"] == 0 and im.info["duration"] == 100


def test_grid(tmp_path):
    a, b = frames(4, 16, 12), frames(2, 16, 12)
    path = write_grid([a, b], tmp_path / "g.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (2 + 4 * (16 + 2), 2 * (12 + 2) + 2)
        grid = np.asarray(im.convert("RGB"))
    assert np.array_equal(grid[2:14, 2:18], a[0]) and np.array_equal(grid[16:28, 20:36], b[1])
    labelled = write_grid([a, b], tmp_path / "l.png", labels=["a cat", "a dog"])
    with Image.open(labelled) as im:
        assert im.size[0] == 2 + 4 * 18 and im.size[1] > 2 * 14 + 2 + 2 * 8
        top = np.asarray(im.convert("L"))[:12]
    assert top.min() < 128  # some dark label text above the first row
    with pytest.raises(ValueError, match="labels"):
        write_grid([a], tmp_path / "x.png", labels=["a", "b"])


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert path.read_bytes() == b"old" and not (tmp_path / "out.png.tmp").exists()
    write_grid([frames(1)], path)
    assert Image.open(path).size[0] > 0


def test_atomic_dir_keeps_old_folder_on_failure_and_replaces_it_on_success(tmp_path):
    from sdvideo.atomic_files import atomic_dir

    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "old.bin").write_bytes(b"old")
    (tmp_path / "unet.tmp").mkdir()  # a killed run's leftover
    (tmp_path / "unet.tmp" / "stale.bin").write_bytes(b"stale")
    with pytest.raises(RuntimeError):
        with atomic_dir(folder) as tmp:
            assert list(tmp.iterdir()) == []  # starts empty: the leftover is cleared
            (tmp / "half.bin").write_bytes(b"half")
            raise RuntimeError("crash")
    assert [p.name for p in folder.iterdir()] == ["old.bin"] and not (tmp_path / "unet.tmp").exists()
    with atomic_dir(folder, durable=True) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "new.bin").write_bytes(b"new")
    assert [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))] == ["sub", "sub/new.bin"]
    assert not (tmp_path / "unet.tmp").exists()
