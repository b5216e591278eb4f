"""bench/bench_unet.py's CPU smoke mode (--tiny) for the AnimateDiff design and LoRA (issue #29's GPU call,
bench/calls/run102-animatediff-design.sh): the rows build and train, and train what `sdvideo train` trains.

In this process (a subprocess would spend most of the time importing diffusers again): the settings the script
changes process-wide (TF32, cuDNN benchmarking, the RNG) are put back afterwards.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench_unet():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_unet  # it puts bench/ on sys.path too, for its own imports
    finally:
        while str(BENCH) in sys.path:  # no bench/ module shadows another test's imports
            sys.path.remove(str(BENCH))
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng():
        yield bench_unet
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved
    bench_unet.configure(tiny=False)


def run(bench_unet, tmp_path, monkeypatch, *args):
    out = tmp_path / "rows.json"
    monkeypatch.setattr(sys, "argv", ["bench_unet.py", "--tiny", "--json", str(out), *args])
    bench_unet.main()
    return json.loads(out.read_text())["rows"]


def tiny_counts(rank):
    """(spatial, temporal, adapter) parameter counts of the tiny animatediff VideoUNet, built here directly."""
    from diffusers import UNet2DConditionModel

    from sdvideo.models.presets import preset
    from sdvideo.models.video_unet import inflate
    from sdvideo.training.lora import lora_targets

    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"]), temporal_layers="animatediff")
    summary = video.parameter_summary()
    adapters = sum(rank * (video.get_submodule(name).in_features + video.get_submodule(name).out_features)
                   for name in lora_targets(video))
    return summary["spatial"], summary["temporal"], adapters


def test_tiny_animatediff_design_plain_and_lora(bench_unet, tmp_path, monkeypatch):
    spatial, temporal, adapters = tiny_counts(4)
    assert adapters > 0
    (lora,) = run(bench_unet, tmp_path, monkeypatch, "--models", "sdvideo-animatediff", "--lora-rank", "4",
                  "--cases", "1x4")
    (plain,) = run(bench_unet, tmp_path, monkeypatch, "--models", "sdvideo-animatediff", "--cases", "1x4")
    for row in (lora, plain):
        assert row["model"] == "sdvideo-animatediff" and row["variant"] == "eager" and row["case"] == "1x4"
        assert row["tiny"] is True and "error" not in row and row["step_s"] > 0
        assert row["peak_gib"] != row["peak_gib"]  # NaN: no memory claim on the CPU
    # LoRA: only the adapters train; the frozen temporal weights stay fp32, the spatial ones bf16
    assert lora["lora_rank"] == 4
    assert round(lora["trainable_M"] * 1e6) == adapters
    assert round(lora["total_M"] * 1e6) == spatial + temporal + adapters
    assert round(lora["params_gib"] * 2**30) == 2 * spatial + 4 * (temporal + adapters)
    # without: every motion module (and the fps embedding) trains, fp32
    assert plain["lora_rank"] == 0
    assert round(plain["trainable_M"] * 1e6) == temporal
    assert round(plain["params_gib"] * 2**30) == 2 * spatial + 4 * temporal


def test_animatediff_design_variants(bench_unet):
    variants = bench_unet.VARIANTS["sdvideo-animatediff"]
    # run102's: the motion modules recomputed, and the LoRA call's full checkpointing, compiled in block regions
    assert variants["compiled-ckpt-temporal-cl-blocks"] == dict(compile=True, checkpointing="temporal",
                                                                channels_last=True, regions="blocks")
    assert variants["compiled-ckpt-full-cl-blocks"]["checkpointing"] == "full"
    assert variants["compiled-light-1+2-cl-blocks"] == bench_unet.VARIANTS["sdvideo"]["compiled-light-1+2-cl-blocks"]
    assert not any(set(options) & set(bench_unet.PSEUDO3D_ONLY) for options in variants.values())


def test_lora_adapters_get_gradients(bench_unet):
    # the benchmark's LoRA model starts as from trained motion modules: every adapter's B gets a gradient
    bench_unet.configure(tiny=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model, call = bench_unet.build_sdvideo_animatediff({"lora_rank": 4, "checkpointing": "full"})
        x, t, c = torch.randn(1, 4, 4, 8, 8), torch.randint(0, 1000, (1,)), torch.randn(1, 77, 32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            call(model, x, t, c).float().pow(2).mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert grads and all(".lora_A." in name or ".lora_B." in name for name in grads)
    b_grads = [g for name, g in grads.items() if ".lora_B." in name]
    assert b_grads and all(g is not None and g.abs().sum() > 0 for g in b_grads)
