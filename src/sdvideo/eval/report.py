"""Writing the evaluation: metrics.json for machines, report.md with tables, plots and frame grids."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_files import atomic_path, save_figure
from ..sampling.export import write_grid
from .appearance import NUMBERS, relative_to_real

LOSS_NAMES = {"video": "video model (temporal on)", "independent": "same weights, temporal off",
              "base": "base image model", "shuffled": "video model, frames shuffled"}


def loss_models(losses: dict[str, Any]) -> list[str]:
    """The models `losses` holds, known ones first, then controls under their own names."""
    return list(losses.get("per_clip") or [k for k in LOSS_NAMES if k in losses])


def loss_label(name: str) -> str:
    return LOSS_NAMES.get(name, name)
GROUP_NAMES = {"real": "real held-out clips", "video": "video model samples",
               "independent": "frame-independent samples"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_losses(losses: dict[str, Any], path: Path) -> Path:
    """Loss per timestep bucket, one line per model."""
    plt = _pyplot()
    centers = [(lo + hi) / 2 for lo, hi in losses["buckets"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.5), dpi=100)
    for key in loss_models(losses):
        ax.plot(centers, losses[key], marker="o", label=loss_label(key))
    ax.set_xlabel("timestep (bucket centre)")
    ax.set_ylabel("held-out denoising loss")
    ax.set_title("held-out loss by timestep (same clips, same noise)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_flow(motion: dict[str, dict[str, Any]], path: Path) -> Path:
    """Bars of warp error, flicker and mean flow for each group of clips (error bars: std over clips)."""
    plt = _pyplot()
    keys = [("warp_error", "warping error"), ("flicker", "flicker"), ("flow_magnitude", "mean flow (px/frame)")]
    groups = [g for g in GROUP_NAMES if g in motion]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), dpi=100)
    for ax, (key, title) in zip(axes, keys):
        values = [motion[g][key] for g in groups]
        errors = [motion[g][f"{key}_std"] for g in groups]
        ax.bar(range(len(groups)), values, yerr=errors, color=["#4c72b0", "#55a868", "#c44e52"][: len(groups)])
        ax.set_xticks(range(len(groups)), [g for g in groups], rotation=0)
        ax.set_title(title)
    fig.suptitle("motion statistics (Farnebäck optical flow)")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def write_frame_grid(rows: list[tuple[str, np.ndarray]], path: Path) -> Path | None:
    """A grid with one labelled row per uint8 (T, H, W, 3) clip; None when there is nothing to show."""
    if not rows:
        return None
    return write_grid([r for _, r in rows], path, labels=[label for label, _ in rows])


def _fmt(x: Any) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4f}"
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def write_metrics(metrics: dict[str, Any], out: Path) -> Path:
    path = out / "metrics.json"
    with atomic_path(path, durable=False) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return path


def loss_verdict(losses: dict[str, Any]) -> str:
    """One sentence: whether the temporal layers lower or raise the mean held-out loss, and where."""
    video, independent = losses["video/mean"], losses["independent/mean"]
    share = 100 * abs(independent - video) / max(independent, 1e-12)
    lower = [f"{lo}-{hi}" for (lo, hi), v, i in zip(losses["buckets"], losses["video"], losses["independent"]) if v < i]
    where = ("lower in every timestep bucket" if len(lower) == len(losses["buckets"]) else
             f"lower only at timesteps {', '.join(lower)}" if lower else "higher in every timestep bucket")
    verb = "lower" if video < independent else "raise"
    return (f"Temporal layers {verb} the mean held-out loss by {abs(independent - video):.4f} ({share:.1f}% of the "
            f"frame-independent loss); the video model's loss is {where}.")


def write_report(metrics: dict[str, Any], out: Path, figures: dict[str, Path | None]) -> Path:
    """report.md from `metrics` (see `evaluate`) and the figure files (relative links)."""
    lines = [f"# Evaluation of {metrics['run']}", "",
             f"Held-out data: `{metrics['data']}` ({metrics['losses']['clips']} clips of "
             f"{metrics.get('clip_frames', metrics['frames'])} frames; samples of {metrics['frames']} frames). "
             f"Device: {metrics['device']}. Seconds: {metrics['seconds']:.1f}.", ""]
    losses = metrics["losses"]
    lines += ["## Held-out denoising loss by timestep", "",
              "Same clips, same timesteps and same noise for every model (noise seeds "
              f"{', '.join(str(s) for s in losses.get('seeds', [losses['seed']]))}); lower is better.", ""]
    names = loss_models(losses)
    header = ["timesteps"] + [loss_label(k) for k in names]
    rows = [[f"{lo}-{hi}"] + [losses[k][i] for k in names] for i, (lo, hi) in enumerate(losses["buckets"])]
    rows.append(["**mean**"] + [losses[f"{k}/mean"] for k in names])
    if all(f"{k}/x0_mean" in losses for k in names):
        rows.append(["clean-latent (x0) error, mean"] + [losses[f"{k}/x0_mean"] for k in names])
    lines += _table(header, rows)
    lines += [loss_verdict(losses), ""]
    differences = losses.get("differences") or {}
    if differences:
        level = next(iter(differences.values()))["confidence"]
        lines += [f"Paired differences per clip (first model minus second; {level:.0%} bootstrap intervals over "
                  "clips; negative: the first is lower):", ""]
        rows = [[f"{loss_label(a)} - {loss_label(b)}", d["mean"], f"[{d['mean_ci'][0]:.4f}, {d['mean_ci'][1]:.4f}]",
                 f"{100 * d['relative']:+.1f}%", d["lower_in_every_bucket"]]
                for (a, b), d in ((key.split(" vs ", 1), d) for key, d in differences.items())]
        lines += _table(["difference", "mean", "interval", "relative to the second", "lower in every bucket"], rows)
    if figures.get("losses"):
        lines += ["![loss by timestep](loss_by_timestep.png)", ""]

    motion = metrics["motion"]
    lines += ["## Motion statistics", "",
              "Farnebäck optical flow between consecutive frames: warping error (mean |next - warped previous|, "
              "intensities in [0, 1]), flicker (|mean of that residual|), mean flow in pixels per frame. "
              "Samples use the same prompts and seeds with the temporal layers on and off"
              + (f", DDIM with eta {metrics['eta']:g} (fresh noise at each step, from the noise prior)" if
                 metrics.get("eta", 0) > 0 else "")
              + (f"; the video model's with FreeInit, {metrics['free_init']} samplings each." if
                 metrics.get("free_init", 1) > 1 else "."), ""]
    rows = [[GROUP_NAMES[g], motion[g]["clips"], motion[g]["warp_error"], motion[g]["flicker"],
             motion[g]["flow_magnitude"]] for g in GROUP_NAMES if g in motion]
    lines += _table(["clips", "n", "warping error", "flicker", "mean flow"], rows)
    if "real" in motion and "video" in motion and "independent" in motion:
        dv = abs(motion["video"]["warp_error"] - motion["real"]["warp_error"])
        di = abs(motion["independent"]["warp_error"] - motion["real"]["warp_error"])
        closer = "closer to" if dv < di else "not closer to"
        lines += [f"The video model's warping error is {closer} the real clips' than frame-independent "
                  f"sampling's ({dv:.4f} vs {di:.4f} away).", ""]
    if figures.get("flow"):
        lines += ["![flow statistics](flow_statistics.png)", ""]
    shape = metrics.get("shape_consistency") or {}
    if shape:
        limits = next(iter(shape.values()))["thresholds"]
        lines += ["Shape consistency (`shape_consistency.py`: do things move, or are they re-drawn?): content "
                  "followed by the flow over the clip must keep its structure. Scores are shares of re-drawn "
                  f"pixels (limit {limits['redrawn']}), structural drift (limit {limits['drift']}) and motion "
                  f"jitter (limit {limits['jitter']}); a clip is consistent when each is under its limit.", ""]
        rows = [[GROUP_NAMES[g], v["clips"], v["consistent_share"], v["score"], v["redrawn"], v["drift"], v["jitter"]]
                for g, v in shape.items()]
        lines += _table(["clips", "n", "consistent", "score (< 1)", "re-drawn", "drift", "jitter"], rows)
    appearance = metrics.get("appearance") or {}
    if appearance:
        lines += ["Colour, contrast, detail and diversity (`appearance.py`: washed-out, blurred or look-alike "
                  "samples can still move consistently): colourfulness (Hasler and Süsstrunk; grey 0), RMS contrast "
                  "and mean absolute Laplacian of the luma, 0-255, means over frames and clips; diversity, the mean "
                  "RMS distance between the first frames of any two clips of a group (the real clips are different "
                  "scenes, the samples seeds of the prompts).", ""]
        keys = [k for k in NUMBERS if all(k in v for v in appearance.values())]  # older metrics: no diversity
        ratios = relative_to_real(appearance) if "real" in appearance else {}
        rows = [[GROUP_NAMES[g], v["clips"]] + [v[k] for k in keys] + [ratios[g][k] for k in keys if ratios]
                for g, v in appearance.items()]
        lines += _table(["clips", "n"] + keys + ([f"{k} × real" for k in keys] if ratios else []), rows)
    if figures.get("comparison"):
        lines += ["Animated (rows: real held-out clips, the video model's samples, the same seeds sampled with "
                  "frames independent):", "", "![real clips and samples](comparison.gif)", ""]
    if figures.get("grid"):
        lines += ["Frames (rows: real held-out clips, then each prompt with the temporal layers on and off):", "",
                  "![frame grid](grid.png)", ""]

    ego = metrics.get("ego_motion")
    lines += ["## Ego-motion check", ""]
    if not ego or ego.get("skipped"):
        lines += [f"Skipped: {ego.get('skipped') if ego else 'not run'}.", ""]
    else:
        lines += [f"Prompt: \"{ego['prompt']}\". A clip agrees when at least {ego['thresholds']['expansion']:.0%} "
                  "of its (magnitude-weighted) flow points away from the focus of expansion and the outer part "
                  f"of the frame moves at least {ego['thresholds']['parallax']}x faster than the inner part.", ""]
        rows = []
        for key, label in (("reference", "rendered scene (forward)"), ("reference_reversed", "rendered scene played backwards"),
                           ("real", "real held-out driving clips"), ("video", "video model samples"),
                           ("independent", "frame-independent samples")):
            if key in ego and ego[key]["clips"]:
                per = ego[key]["per_clip"]
                rows.append([label, ego[key]["clips"], ego[key]["rate"], float(np.mean([p["expansion"] for p in per])),
                             float(np.mean([p["parallax"] for p in per]))])
        lines += _table(["clips", "n", "agreement rate", "mean expansion", "mean parallax"], rows)
        if figures.get("ego_grid"):
            lines += ["![ego-motion samples](ego_grid.png)", ""]
    optional = metrics.get("clip_score")
    if optional:
        lines += ["## CLIP score", "", *_table(["samples", "CLIP score"],
                                              [[k, v["mean"]] for k, v in optional.items()])]
    fvd = metrics.get("fvd")
    if fvd:
        lines += ["## FVD (held-out clips vs samples; lower is closer)", "",
                  *_table(["samples", "FVD"], [["video model", fvd["video"]], ["frames independent", fvd["independent"]]]),
                  f"{fvd['videos']['real']} real and {fvd['videos']['generated']} generated videos: with so few, FVD is "
                  "noisy; compare runs with the same counts.", ""]
    lines += ["Machine-readable numbers: `metrics.json`.", ""]
    path = out / "report.md"
    with atomic_path(path, durable=False) as tmp:
        tmp.write_text("\n".join(lines))
    return path
