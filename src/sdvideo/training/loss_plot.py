"""A loss curve like the original write-up's: raw loss per step and its moving average."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..atomic_files import save_figure


def write_loss_plot(steps: Sequence[int], losses: Sequence[float], path: str | Path, title: str = "training loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot(steps, losses, lw=0.6, alpha=0.4, label="loss")
    if len(losses) >= 5:
        window = max(5, len(losses) // 20)
        kernel = np.ones(window) / window
        smooth = np.convolve(np.asarray(losses, dtype=float), kernel, mode="valid")
        ax.plot(list(steps)[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def write_validation_plot(table: str | Path, path: str | Path) -> None:
    """RUN/validation.csv as curves: one panel per validated set, the video model's loss against the same
    weights with frames independent (a gap that opens on training clips only is overfitting)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets), 3.2), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], sets):
        mine = [r for r in rows if r["set"] == name]
        steps = [int(r["step"]) for r in mine]
        ax.plot(steps, [float(r["video"]) for r in mine], marker=".", label="video model")
        ax.plot(steps, [float(r["independent"]) for r in mine], marker=".", label="frames independent")
        ax.set_title(f"{name} clips")
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("validation loss (fixed noise)")
    axes[0][0].legend()
    fig.tight_layout()
    save_figure(fig, Path(path))
