"""From bench_geglu_tiles.py's rows: the tile with the least GEGLU time per guided SD 1.5 call (each level
weighted by its transformer count, taking at each level the faster of the tile and diffusers' cuBLAS
projection + gate kernel), printed with the most input channels where the tile is the faster as
bench_unet.py's --geglu-tile value ("BLOCK_M,...,per_sm;max_k"); nothing when no level gains.

    python bench/pick_geglu_tile.py rows.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

TRANSFORMERS = {64: 5, 32: 5, 16: 5, 8: 1}  # SD 1.5's spatial transformers per latent side: down + up, mid


def main() -> None:
    rows = [r for r in json.load(open(sys.argv[1])) if r.get("gelu") == "erf-as" and "ms" in r]
    plain = {r["side"]: (r["plain_ms"], r["channels"]) for r in rows}
    plain_total = sum(TRANSFORMERS[s] * ms for s, (ms, _) in plain.items())
    totals: dict[tuple, float] = defaultdict(lambda: plain_total)
    max_k: dict[tuple, int] = defaultdict(int)
    for r in rows:
        gain = plain[r["side"]][0] - r["ms"]
        if gain > 0:
            totals[tuple(r["tile"])] -= TRANSFORMERS[r["side"]] * gain
            max_k[tuple(r["tile"])] = max(max_k[tuple(r["tile"])], r["channels"])
    if not totals:
        print(f"plain {plain_total:.3f} ms a call: no tile gains", file=sys.stderr)
        return
    best = min(totals, key=totals.get)
    print(f"plain {plain_total:.3f} ms a call, best {best} up to {max_k[best]} channels {totals[best]:.3f} ms",
          file=sys.stderr)
    print(",".join(str(v) for v in best) + f";{max_k[best]}")


if __name__ == "__main__":
    main()
