"""An eval's comparison.gif: its clips' colour, contrast, detail, diversity, as multiples of the real clips'.

    python bench/gif_appearance.py docs/experiment-current/comparison.gif
    git show 3e99913:docs/experiment-h100-means/comparison.gif > means.gif && python bench/gif_appearance.py means.gif

The GIF tiles 3 rows (real held-out clips, the video model's samples, the same seeds with frames independent) of up
to 4 clips with 2 px borders (`sampling/export.tile_videos`). Its 256-colour palette shifts the numbers a little;
`eval` measures the clips themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.eval.appearance import NUMBERS, relative_to_real, summarize_appearance  # noqa: E402

GROUPS = ("real", "video", "independent")


def tiles(video: np.ndarray, rows: int, cols: int, pad: int = 2) -> list[list[np.ndarray]]:
    """(T, H, W, 3) tiled video -> rows of (T, h, w, 3) clips."""
    h, w = (video.shape[1] - pad) // rows - pad, (video.shape[2] - pad) // cols - pad
    return [[video[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w]
             for c in range(cols)] for r in range(rows)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("gif", nargs="+")
    p.add_argument("--columns", type=int, default=4, help="clips per row")
    args = p.parse_args(argv)
    for path in args.gif:
        video = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(path))])
        looks = {g: summarize_appearance(row) for g, row in zip(GROUPS, tiles(video, len(GROUPS), args.columns))}
        ratios = relative_to_real(looks)
        result = {g: {k: round(v[k], 2) for k in NUMBERS}
                  | {f"{k} x real": round(r, 3) for k, r in ratios[g].items()} for g, v in looks.items()}
        print(path, json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
