"""LoRA on the temporal layers (`sdvideo train --lora-rank R --init-temporal RUN_OR_FILE`): only the adapters
train, resume continues exactly, the run folder samples like any other with the adapters merged, the adapters
are saved alone, the memory estimate counts adapters only, and bad options are refused in one line."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_training import config as training_config
from test_training import read_losses

from sdvideo.cli import main
from sdvideo.models.base import load_base
from sdvideo.sampling.pipeline import load_video_unet
from sdvideo.training.checkpoint import checkpoint_dirs
from sdvideo.training.lora import (
    LORA_FILE,
    add_temporal_lora,
    merge_lora,
    merged_state_dict,
    read_lora,
)
from sdvideo.training.train import build_video_unet, train

pytestmark = pytest.mark.usefixtures("one_thread")


def config(cache, base, out, **kw):
    """test_training's tiny run, shorter and at a higher learning rate: the adapters must move in 4 steps."""
    return training_config(cache, base, out, **{"steps": 4, "lr": 1e-2, **kw})


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_cache, tiny_base_dir):
    """A plain run whose temporal layers moved off the identity: the LoRA runs' starting point."""
    out = tmp_path_factory.mktemp("lora") / "source"
    train(config(tiny_cache, tiny_base_dir, out, steps=2, ema_decay=0.0, lr=5e-2), progress=False)
    return out


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_cache, tiny_base_dir, source):
    """A LoRA run of 4 steps from `source`, 8-bit AdamW, EMA and clipping on (checkpoints at 2 and 4)."""
    out = tmp_path_factory.mktemp("lora") / "run"
    train(config(tiny_cache, tiny_base_dir, out, init_temporal=str(source), lora_rank=4, lora_alpha=8.0,
                 optimizer="adamw8bit", ema_decay=0.9, grad_clip=0.5), progress=False)
    return out


def test_only_the_adapters_train_and_the_run_holds_them_merged(lora_run, source, tiny_base_dir):
    # the checkpoint's trainable weights, EMA and optimizer state are the adapters' alone
    last = checkpoint_dirs(lora_run)[-1]
    trained = load_file(last / "trainable.safetensors")
    ema = load_file(last / "ema.safetensors")
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    assert set(ema) == {f"ema.{n}" for n in trained}
    assert len(load_file(last / "optimizer.safetensors")) >= 2 * len(trained)  # moments of every adapter
    adapters, settings = read_lora(lora_run / LORA_FILE)
    assert settings["rank"] == 4 and settings["alpha"] == 8.0 and settings["design"] == "pseudo3d"
    assert len(adapters) == len(trained) == 2 * len(settings["target_modules"])
    assert any(t.abs().max() > 0 for n, t in adapters.items() if "lora_B" in n)  # they learned something

    # RUN/unet/: the image model and every non-adapted temporal weight bit-identical to where they started,
    # each adapted weight the start plus alpha / R x B A (the EMA adapters, as saved in lora.safetensors)
    merged = load_video_unet(lora_run).state_dict()
    start = load_video_unet(source).state_dict()
    base = load_base(tiny_base_dir).unet.state_dict()
    spatial = load_video_unet(lora_run).spatial_state_dict()
    assert all(torch.equal(spatial[k], base[k]) for k in base)
    adapted = {f"{m}.weight" for m in settings["target_modules"]}
    for name, value in merged.items():
        if name in adapted:
            module = name.removesuffix(".weight")
            delta = adapters[f"{module}.lora_B.weight"] @ adapters[f"{module}.lora_A.weight"] * (8.0 / 4)
            torch.testing.assert_close(value, start[name] + delta, rtol=0, atol=1e-6)
        else:
            assert torch.equal(value, start[name]), name
    assert any(not torch.equal(merged[n], start[n]) for n in adapted)


def test_resume_continues_exactly(lora_run, source, tiny_cache, tiny_base_dir, tmp_path):
    # 2 steps, then --resume to 4: the same losses, adapters and merged model as 4 steps in one go
    opts = dict(init_temporal=str(source), lora_rank=4, lora_alpha=8.0, optimizer="adamw8bit", ema_decay=0.9,
                grad_clip=0.5)
    out = tmp_path / "resumed"
    train(config(tiny_cache, tiny_base_dir, out, steps=2, **opts), progress=False)
    # the checkpoints hold the adapters alone: a starting point with other frozen weights is refused, unchanged
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ValueError, match=r"resumed: cannot resume from .*: the frozen temporal weights of this "
                                         r"run's starting point \(--init-temporal .*run\) are not the ones"):
        train(config(tiny_cache, tiny_base_dir, out, resume=True, **{**opts, "init_temporal": str(lora_run)}),
              progress=False)
    assert sorted(p.name for p in out.rglob("*")) == before
    # the same weights from another path (an exported fp32 file) continue it, the change recorded
    from sdvideo.export.temporal import export

    moved = export(source, tmp_path / "moved.safetensors", dtype="fp32").path
    train(config(tiny_cache, tiny_base_dir, out, resume=True, **{**opts, "init_temporal": str(moved)}), progress=False)
    changed = json.loads((out / "config.json").read_text())["resumed"][-1]["changed"]
    assert changed["init_temporal"][1].endswith("moved.safetensors")
    assert read_losses(out) == read_losses(lora_run)
    name = "unet/diffusion_pytorch_model.safetensors"
    assert (out / name).read_bytes() == (lora_run / name).read_bytes()
    (ours, our_settings), (theirs, their_settings) = read_lora(out / LORA_FILE), read_lora(lora_run / LORA_FILE)
    assert our_settings == {**their_settings, "init_temporal": "moved.safetensors"} and ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # (the header's order is safetensors' own)


@pytest.mark.parametrize("design", ["pseudo3d", "animatediff"])
def test_merged_model_computes_what_the_adapted_one_does(design, video_unet):
    if design == "animatediff":  # the motion modules, moved off their zero-output start
        from diffusers import UNet2DConditionModel

        from sdvideo.models.presets import preset
        from sdvideo.models.video_unet import inflate

        torch.manual_seed(0)
        video_unet = inflate(UNet2DConditionModel(**preset("tiny")["unet"]), temporal_layers="animatediff",
                             motion_num_attention_heads=2).eval()
        for p in video_unet.temporal_parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    video = copy.deepcopy(video_unet)
    add_temporal_lora(video, rank=4, alpha=2.0)
    assert any(".temporal." in n and "lora_A" in n for n, _ in video.named_parameters())
    torch.manual_seed(1)
    for name, p in video.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.2)
    x, t = torch.randn(1, 4, 3, 8, 8), torch.tensor([500])
    text = torch.randn(1, 77, video.unet.config.cross_attention_dim)
    with torch.no_grad():
        adapted = video(x, t, text, fps=6.0).sample
        plain = video_unet(x, t, text, fps=6.0).sample
        state = merged_state_dict(video)
        merge_lora(video)
        merged = video(x, t, text, fps=6.0).sample
    assert not torch.allclose(adapted, plain, atol=1e-3)  # the adapters change the output ...
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-5)  # ... and merging keeps it
    assert not any("lora_" in n or "base_layer" in n for n in video.state_dict())
    assert set(state) == set(video_unet.state_dict()) == set(video.state_dict())
    assert all(torch.equal(state[k], v) for k, v in video.state_dict().items())


def test_sample_from_a_lora_run(lora_run, tmp_path):
    assert main(["sample", "--run", str(lora_run), "--prompt", "a square", "--frames", "3", "--steps", "2",
                 "--device", "cpu", "--out", str(tmp_path / "s")]) == 0
    assert list((tmp_path / "s").glob("*.mp4"))


def test_memory_estimate_counts_the_adapters_alone(tiny_cache, tiny_base_dir, source, tmp_path):
    from sdvideo.training.dry_run import memory_options
    from sdvideo.training.memory_estimate import estimate_training_memory

    base = load_base(tiny_base_dir)
    estimates = {}
    for rank in (0, 8):
        cfg = config(tiny_cache, tiny_base_dir, tmp_path, init_temporal=str(source), lora_rank=rank,
                     gradient_checkpointing="none").resolved()
        options = memory_options(cfg, base.unet.config, 8)
        estimates[rank] = estimate_training_memory(batch_size=2, frames=4, **options)
    full, lora = estimates[0], estimates[8]
    assert lora["total_gib"] < full["total_gib"]
    assert lora["trainable_params"] < full["trainable_params"] / 2
    assert lora["gradients_gib"] < full["gradients_gib"] and lora["optimizer_gib"] < full["optimizer_gib"]
    video, _ = build_video_unet(cfg, base)  # what would train is what the estimate counted
    assert sum(p.numel() for p in video.parameters() if p.requires_grad) == lora["trainable_params"]


def _retyped(path: Path, out: Path, **changes) -> Path:
    """A copy of temporal file `path` whose video_unet_config has `changes` (unet_config ones under "unet_")."""
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    video_config = json.loads(metadata["video_unet_config"])
    for key, value in changes.items():
        if key.startswith("unet_"):
            video_config["unet_config"][key[5:]] = value
        else:
            video_config[key] = value
    save_file(tensors, str(out), metadata={**metadata, "video_unet_config": json.dumps(video_config)})
    return out


def test_init_temporal_from_an_exported_file_and_bad_ones(source, tiny_cache, tiny_base_dir, tmp_path):
    from sdvideo.export.temporal import export

    file = export(source, tmp_path / "src.safetensors", dtype="fp32").path
    cfg = config(tiny_cache, tiny_base_dir, tmp_path / "x", init_temporal=str(file)).resolved()
    video, _ = build_video_unet(cfg)
    start = load_video_unet(source).state_dict()
    assert all(torch.equal(p, start[n]) for n, p in video.named_parameters() if ".temporal." in n)
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in video.named_parameters() if "to_out.weight" in n)

    other_design = _retyped(file, tmp_path / "design.safetensors", temporal_embedding=True)
    with pytest.raises(ValueError, match=r"design\.safetensors.*temporal_embedding=true.*--temporal-embedding"):
        build_video_unet(config(tiny_cache, tiny_base_dir, tmp_path / "x", init_temporal=str(other_design)).resolved())
    animatediff = _retyped(file, tmp_path / "motion.safetensors", temporal_layers="animatediff")
    with pytest.raises(ValueError, match=r"motion\.safetensors.*temporal_layers=\"animatediff\".*--temporal-layers"):
        build_video_unet(config(tiny_cache, tiny_base_dir, tmp_path / "x", init_temporal=str(animatediff)).resolved())
    other_size = _retyped(file, tmp_path / "size.safetensors", unet_block_out_channels=[64, 128])
    with pytest.raises(ValueError, match=r"size\.safetensors holds temporal layers for a UNet with block channels "
                                         r"\[64, 128\]; .*has \[32, 64\]"):
        build_video_unet(config(tiny_cache, tiny_base_dir, tmp_path / "x", init_temporal=str(other_size)).resolved())


@pytest.mark.parametrize("flags, message", [
    (["--lora-rank", "-1"], "--lora-rank must be an integer of at least 0"),
    (["--lora-rank", "8"], "--lora-rank needs --init-temporal RUN or --init-motion FILE"),
    (["--lora-rank", "8", "--init-temporal", "SOURCE", "--train", "all"], "cannot go with --train all"),
    (["--lora-rank", "8", "--init-temporal", "nowhere"], "--init-temporal nowhere: no such run folder or file"),
    (["--lora-alpha", "4"], "--lora-alpha needs --lora-rank"),
])
def test_bad_lora_options_are_one_line(flags, message, source, tiny_cache, tiny_base_dir, tmp_path, capsys):
    flags = [str(source) if f == "SOURCE" else f for f in flags]
    code = main(["train", "--data", str(tiny_cache), "--base", str(tiny_base_dir), "--out", str(tmp_path / "r"),
                 "--device", "cpu", "--dry-run", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_dry_run_with_lora(source, tiny_cache, tiny_base_dir, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_cache), "--base", str(tiny_base_dir), "--out", str(tmp_path / "r"),
                 "--device", "cpu", "--dry-run", "--lora-rank", "8", "--init-temporal", str(source)]) == 0
    out = capsys.readouterr().out
    assert '"lora_rank": 8' in out and "estimated peak GPU memory" in out
    assert "with --lora-rank the estimate has come out below the measured peak" in out  # the known gap, said


def test_keep_best_writes_the_merged_layers(lora_run, source, tiny_cache, tiny_base_dir, tmp_path):
    # RUN/best/ during a LoRA run: a plain run folder computing what the adapted model computes, which keeps training
    from sdvideo.training.best_model import save_best

    cfg = config(tiny_cache, tiny_base_dir, tmp_path, init_temporal=str(source), lora_rank=4).resolved()
    video, _ = build_video_unet(cfg)
    for name, p in video.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.2)
    (tmp_path / "config.json").write_bytes((lora_run / "config.json").read_bytes())
    save_best(video, tmp_path, 4, dict(video=1.0, independent=1.0))
    best = load_video_unet(tmp_path / "best")
    x, t, text = torch.randn(1, 4, 3, 8, 8), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        adapted, saved = video.eval()(x, t, text, fps=6.0).sample, best(x, t, text, fps=6.0).sample
    torch.testing.assert_close(saved, adapted, rtol=0, atol=1e-5)
    assert any("lora_A" in n for n, _ in video.named_parameters())  # the training model keeps its adapters
