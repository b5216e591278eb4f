"""`sdvideo train --dry-run`'s memory estimate, against peaks measured on H100s (one step on an H200).

The measured peaks are fixtures copied from the benchmark results of 2026-11-25 and 2026-11-26 (raw files:
bench/results/ at commit 4879f24; current figures: BENCHMARKS.md). tests/data/measured_peaks.jsonl holds
every recorded sdvideo training step at the SD 1.5 size (512 px, bf16, fused float32 AdamW or sdvideo's
8-bit AdamW); tests/data/max_frames.jsonl every trial of bench/max_frames.py that trained at batch 1 under a
24 GiB cap (8-bit AdamW, 512 and 256 px), and the most frames that trained per level with the allocator
`sdvideo train` uses (for full checkpointing: the search with expandable segments).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdvideo.models.base import preset
from sdvideo.training.memory_estimate import _AutocastOnMeta, estimate_training_memory, saved_activation_bytes

DATA = Path(__file__).resolve().parent / "data"


def fixture_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def measured_peaks() -> list[tuple[str, bool, int, int, float, str]]:
    """(checkpointing, compiled, batch, frames, measured peak GiB, optimizer) for every recorded sdvideo step."""
    return [(r["checkpointing"], r["compiled"], r["batch"], r["frames"], r["peak_gib"], r["optimizer"])
            for r in fixture_rows("measured_peaks.jsonl")]


def max_frames_peaks() -> list[tuple[str, int, int, float]]:
    """(checkpointing, pixel size, frames, measured peak GiB) for every max_frames trial that trained."""
    return sorted((r["checkpointing"], r["size"], r["frames"], r["peak_gib"])
                  for r in fixture_rows("max_frames.jsonl") if "peak_gib" in r)


def test_measured_fixtures_are_there() -> None:
    cases = measured_peaks()
    assert len(cases) == 88 and {c[3] for c in cases} == {5, 16, 64} and {c[5] for c in cases} == {"adamw", "adamw8bit"}
    assert len(max_frames_peaks()) == 18


@pytest.mark.parametrize("checkpointing,compiled,batch,frames,peak,optimizer", measured_peaks())
def test_estimate_within_15_percent_of_the_measured_peak(checkpointing, compiled, batch, frames, peak, optimizer) -> None:
    # The benchmark's setting: SD 1.5 with default temporal layers, 64x64 latents, bf16, its optimizer.
    estimate = estimate_training_memory(preset("sd15")["unet"], {}, batch, frames, 64, optimizer=optimizer,
                                        gradient_checkpointing=checkpointing, compiled=compiled)
    assert abs(estimate["total_gib"] / peak - 1) <= 0.15, (estimate, peak)


@pytest.mark.parametrize("checkpointing,size,frames,peak", max_frames_peaks())
def test_estimate_within_15_percent_at_the_24_gib_boundary(checkpointing, size, frames, peak) -> None:
    # bench/max_frames.py's setting: batch 1, torchao 8-bit AdamW (2 bytes of state per trainable parameter).
    estimate = estimate_training_memory(preset("sd15")["unet"], {}, 1, frames, size // 8, optimizer="adamw8bit",
                                        gradient_checkpointing=checkpointing)
    assert abs(estimate["total_gib"] / peak - 1) <= 0.15, (estimate, peak)


def test_eager_autocast_keeps_more_than_compiled_half_precision() -> None:
    tiny = preset("tiny")["unet"]
    eager = estimate_training_memory(tiny, {}, 1, 3, 16, compiled=False)
    compiled = estimate_training_memory(tiny, {}, 1, 3, 16, compiled=True)
    assert eager["activations_gib"] > 1.2 * compiled["activations_gib"]
    recompute = estimate_training_memory(tiny, {}, 1, 3, 16, gradient_checkpointing="attention")
    assert recompute["activations_gib"] < eager["activations_gib"] and recompute["recompute_gib"] > 0
    assert eager["recompute_gib"] == 0


def test_selective_checkpointing_adds_the_kept_attention_outputs() -> None:
    # Tiny model at 32 x 32 latents: the top level's three transformers (one down, two up) attend
    # over 1,024 keys (32 channels, 8 heads); selective checkpointing keeps each one's bf16 output
    # and float32 log-sum-exp, for each of the 3 frames. The mid block's 256 keys are recomputed.
    tiny = preset("tiny")["unet"]
    options = dict(unet_config=tiny, temporal={}, batch_size=1, frames=3, latent_size=32, compiled=True)
    attention = estimate_training_memory(gradient_checkpointing="attention", **options)
    selective = estimate_training_memory(gradient_checkpointing="selective", **options)
    kept = 3 * 3 * (1024 * 32 * 2 + 8 * 1024 * 4)
    assert round((selective["activations_gib"] - attention["activations_gib"]) * 1024**3) == kept
    assert selective["recompute_gib"] == attention["recompute_gib"]


def test_autocast_on_meta_casts_like_cuda_autocast() -> None:
    with torch.device("meta"):
        x = torch.empty(4, 8)
        weight = torch.nn.Parameter(torch.empty(8, 8))
        with _AutocastOnMeta(torch.bfloat16) as autocast:
            y = F.linear(x, weight)
            z = F.group_norm(y.view(4, 8, 1), 2)
            F.linear(x, weight)
        assert y.dtype == torch.bfloat16 and z.dtype == torch.float32
        assert len(autocast.weight_casts) == 1  # a weight is cast once per forward, like autocast's cache


def test_saved_bytes_of_a_linear_under_emulated_autocast() -> None:
    # Autocast saves the bf16 copy of the float32 input (2 bytes x 4 x 8) for the weight's gradient
    # and, when the input needs a gradient too, the bf16 copy of the weight (2 x 8 x 8): a cast copy is
    # memory beyond the weights, the float32 parameter itself is not.
    with torch.device("meta"):
        layer = torch.nn.Linear(8, 8)
        x = torch.empty(4, 8)
        assert saved_activation_bytes(layer, dict(input=x), autocast_dtype=torch.bfloat16) == (2 * 4 * 8, 0)
        x.requires_grad_(True)
        assert saved_activation_bytes(layer, dict(input=x), autocast_dtype=torch.bfloat16) == (2 * 4 * 8 + 2 * 8 * 8, 0)
        assert saved_activation_bytes(layer, dict(input=x)) == (4 * 4 * 8, 0)  # float32, no autocast
        # A frozen weight is saved for the input's gradient but counted with the weights, not here.
        layer.requires_grad_(False)
        assert saved_activation_bytes(layer, dict(input=x)) == (0, 0)


def test_estimate_is_deterministic() -> None:
    # Tensors a checkpointed region keeps for its recompute are held through the trace (no id reuse).
    options = dict(unet_config=preset("tiny")["unet"], temporal={}, batch_size=1, frames=5, latent_size=16)
    for checkpointing in ("attention", "full"):
        first = estimate_training_memory(gradient_checkpointing=checkpointing, **options)
        assert all(estimate_training_memory(gradient_checkpointing=checkpointing, **options) == first for _ in range(3))


def test_largest_frame_count_is_the_boundary() -> None:
    from sdvideo.training.memory_estimate import largest_frame_count

    options = dict(unet_config=preset("tiny")["unet"], temporal={}, latent_size=16)
    per_frame = [estimate_training_memory(batch_size=1, frames=f, **options)["total_gib"] for f in (6, 7)]
    budget = (per_frame[0] + per_frame[1]) / 2  # between 6 and 7 frames' peaks
    assert largest_frame_count(budget, **options) == 6
    assert largest_frame_count(per_frame[0] / 100, **options) == 0
    assert largest_frame_count(1e6, limit=50, **options) == 50


@pytest.mark.parametrize("start,most_trials", [(1, 16), (30, 7), (37, 4), (38, 5), (45, 7), (90, 8), (400, 12)])
def test_max_frames_search_finds_the_threshold(monkeypatch, start, most_trials) -> None:
    # bench/max_frames.py's search on a GPU stand-in where 37 frames is the most that trains.
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import max_frames

    monkeypatch.setattr(max_frames, "trains", lambda model, call, frames, latent: (frames <= 37, 0.0, 0.0, 0.0))
    rows: list[dict] = []
    assert max_frames.search(None, None, 64, start, max_trials=16, emit=rows.append) == 37
    assert len(rows) == len({row["frames"] for row in rows})  # no frame count is trained twice
    assert len(rows) <= most_trials  # few trials when the estimate is close


def test_checkpointing_advice_names_the_lightest_level_that_fits() -> None:
    from sdvideo.training.memory_estimate import checkpointing_advice

    options = dict(unet_config=preset("tiny")["unet"], temporal={}, latent_size=16)
    peaks = {level: estimate_training_memory(batch_size=2, frames=8, gradient_checkpointing=level, **options)["total_gib"]
             for level in ("none", "attention", "full")}
    assert peaks["none"] > peaks["attention"] > peaks["full"]
    assert checkpointing_advice(peaks["none"] * 1.01, 2, 8, **options) is None
    advice = checkpointing_advice(peaks["attention"] * 1.01, 2, 8, **options)
    assert "use --gradient-checkpointing" in advice and "\n" not in advice
    assert advice.split("use --gradient-checkpointing ")[1].split()[0] in (
        "temporal", "selective-1", "selective-2", "selective", "attention")
    too_small = checkpointing_advice(peaks["full"] * 0.99, 2, 8, **options)
    assert "even with --gradient-checkpointing full: use at most" in too_small
    most = int(too_small.split("use at most ")[1].split()[0])
    assert 0 < most < 8


def measured_maxima() -> list[tuple[str, int, int]]:
    """(checkpointing, pixel size, most frames that trained) from the max_frames searches, with the
    allocator `sdvideo train` uses."""
    return sorted((r["checkpointing"], r["size"], r["measured_frames"])
                  for r in fixture_rows("max_frames.jsonl") if "measured_frames" in r)


@pytest.mark.parametrize("checkpointing,size,measured", measured_maxima())
def test_advised_frame_count_never_exceeds_what_trained(checkpointing, size, measured) -> None:
    from sdvideo.training.memory_estimate import USABLE_SHARE, largest_frame_count

    advised = largest_frame_count(24.0 * USABLE_SHARE, unet_config=preset("sd15")["unet"], temporal={},
                                  latent_size=size // 8, optimizer="adamw8bit", gradient_checkpointing=checkpointing)
    assert 0.9 * measured <= advised <= measured, (advised, measured)


def test_partial_selective_levels_sit_between_temporal_and_selective_at_sd_size() -> None:
    # selective-1 / -2 checkpoint only the transformers of the one / two highest-resolution levels.
    options = dict(unet_config=preset("sd15")["unet"], temporal={}, batch_size=2, frames=16, latent_size=64,
                   optimizer="adamw", compiled=True)
    ladder = ("none", "temporal", "selective-1", "selective-2", "selective")
    peaks = [estimate_training_memory(gradient_checkpointing=level, **options)["total_gib"] for level in ladder]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == len(peaks), dict(zip(ladder, peaks))
