"""bench/gif_appearance.py finds the clips of an eval's comparison.gif and measures them as eval would."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import gif_appearance  # noqa: E402
from sdvideo.eval.appearance import summarize_appearance  # noqa: E402
from sdvideo.sampling.export import tile_videos, write_gif  # noqa: E402


def test_tiles_of_a_written_gif_measure_like_the_clips(tmp_path, capsys):
    rng = np.random.default_rng(0)
    # 3 rows of 4 clips, (4, 12, 10, 3), each two flat colours: few enough colours for the GIF palette to keep exactly
    rows = []
    for _ in range(3):
        row = []
        for _ in range(4):
            clip = np.empty((4, 12, 10, 3), np.uint8)
            clip[:, :6], clip[:, 6:] = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            row.append(clip)
        rows.append(row)
    path = write_gif(tile_videos(rows), tmp_path / "comparison.gif", 10.0)
    assert gif_appearance.main([str(path)]) == 0
    printed = capsys.readouterr().out
    video = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(path))])
    for got, want in zip(gif_appearance.tiles(video, 3, 4), rows):
        assert summarize_appearance(got)["colourfulness"] == pytest.approx(summarize_appearance(want)["colourfulness"])
        assert summarize_appearance(got)["contrast"] == pytest.approx(summarize_appearance(want)["contrast"])
    assert '"real": {' in printed and '"colourfulness x real": 1.0' in printed
