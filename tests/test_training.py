"""The trainer: exact resume after a kill, NaN handling, validation, progress samples, several processes."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch

from sdvideo.models.base import load_base
from sdvideo.sampling.pipeline import is_run_folder, load_video_unet
from sdvideo.training.batches import training_batches, validation_set
from sdvideo.training.checkpoint import checkpoint_dirs
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train
from sdvideo.training.validation import Validator

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def config(cache, base, out, **kw):
    opts = dict(data=str(cache), base=str(base), out=str(out), frames=3, batch_size=2, steps=6, device="cpu",
                lr=1e-3, checkpoint_every=2, log_every=1)
    return TrainConfig(**{**opts, **kw})


def read_losses(run):
    with open(Path(run) / "loss.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def cli(*args):
    return [sys.executable, "-m", "sdvideo", *map(str, args)]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny_cache, tiny_base_dir):
    common = ["train", "--data", tiny_cache, "--base", tiny_base_dir, "--frames", 3, "--steps", 16,
              "--checkpoint-every", 2, "--lr", 1e-3, "--device", "cpu", "--image-ratio", 0.25,
              "--strides", 1, 2, "--caption-dropout", 0.3]
    whole = tmp_path / "whole"
    subprocess.run(cli(*common, "--out", whole), check=True, env=ENV, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(*common, "--out", killed), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(int(d.name[5:]) >= 4 for d in checkpoint_dirs(killed)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [int(d.name[5:]) for d in checkpoint_dirs(killed)]
    assert done and max(done) < 16, f"kill came too late: checkpoints {done}"
    assert not (killed / "unet").exists()

    subprocess.run(cli(*common, "--out", killed, "--resume"), check=True, env=ENV, capture_output=True)
    assert read_losses(killed) == read_losses(whole)  # step for step, bit for bit
    a = (whole / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    b = (killed / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == b


def test_refuses_to_overwrite_a_run_without_resume(tmp_path, tiny_cache, tiny_base_dir):
    train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=2), progress=False)
    with pytest.raises(ValueError, match="--resume"):
        train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=4), progress=False)
    result = train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=4, resume=True), progress=False)
    assert result["steps"] == 4 and len(read_losses(tmp_path / "r")) == 4


def test_keeps_only_the_last_checkpoints(tmp_path, tiny_cache, tiny_base_dir):
    train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=8, checkpoint_every=1, keep_checkpoints=2),
          progress=False)
    names = [d.name for d in checkpoint_dirs(tmp_path / "r")]
    assert names == ["step-0000007", "step-0000008"]
    files = {f.name for f in (tmp_path / "r" / "checkpoints" / names[-1]).iterdir()}
    assert {"trainable.safetensors", "optimizer.safetensors", "ema.safetensors", "state.json",
            "rng-rank0.safetensors"} <= files


def test_nan_losses_skip_then_stop_with_checkpoint_intact(tmp_path, tiny_cache, tiny_base_dir, monkeypatch):
    import sdvideo.training.train as train_module

    real = train_module.diffusion_loss
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        if calls["n"] == 3 or calls["n"] >= 6:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(train_module, "diffusion_loss", flaky)
    with pytest.warns(UserWarning, match="skipped the update"):
        with pytest.raises(FloatingPointError, match="Last good checkpoint: .*step-0000004"):
            train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=20, max_bad_steps=3), progress=False)
    assert [d.name for d in checkpoint_dirs(tmp_path / "r")][-1] == "step-0000004"


def test_validation_and_progress_samples(tmp_path, tiny_cache, tiny_base_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    cfg = config(tiny_cache, tiny_base_dir, run, steps=4, val_every=2, val_clips=2, sample_every=4,
                 sample_prompts=["a moving square"], sample_frames=5, sample_steps=2, keep_best=True,
                 val_data=[str(tiny_cache)])
    train(cfg, progress=False)
    assert (run / "samples" / "step-0000004" / "grid.png").exists()
    assert (run / "samples" / "step-0000004" / "00.mp4").stat().st_size > 0
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "val/held-out/video", "val/held-out/independent", "val/held-out/gap",
            "val/training/video", "val/unseen/video", "val/unseen/independent/x0"} <= set(tags)
    assert len(events.Scalars("val/held-out/video")) == 2
    # the same curves in RUN/validation.csv: one row per step and set
    with open(run / "validation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["step"]), r["set"]) for r in rows] == [(s, n) for s in (2, 4) for n in ("held-out", "training", "unseen")]
    assert (run / "validation.png").stat().st_size > 1000
    curve = [e.value for e in events.Scalars("val/unseen/video")]
    assert [float(r["video"]) for r in rows if r["set"] == "unseen"] == pytest.approx(curve, rel=1e-5)

    # --keep-best: RUN/best is a run folder holding the weights of the lowest validation loss
    best = json.loads((run / "best" / "best.json").read_text())
    lowest = min(events.Scalars("val/held-out/video"), key=lambda e: e.value)
    assert best["step"] == lowest.step and best["video"] == pytest.approx(lowest.value, rel=1e-6)
    model = load_video_unet(run / "best")
    scores = Validator(validation_set(cfg.resolved()), clips=2)(model, load_base(tiny_base_dir).scheduler,
                                                                 torch.device("cpu"))
    assert scores["video"] == pytest.approx(best["video"], rel=1e-5)
    assert is_run_folder(run / "best") and not (run / "best.tmp").exists()


def test_keep_best_needs_validation(tiny_cache, tiny_base_dir, tmp_path):
    with pytest.raises(ValueError, match="--keep-best needs --val-every"):
        config(tiny_cache, tiny_base_dir, tmp_path, keep_best=True).resolved()


def test_batches_are_disjoint_across_ranks_and_resumable(tiny_cache, tiny_base_dir, tmp_path):
    cfg = config(tiny_cache, tiny_base_dir, tmp_path, batch_size=2).resolved()
    ranks = [training_batches(cfg, rank, 2) for rank in range(2)]
    first = [next(ranks[r](0)) for r in range(2)]
    assert not torch.equal(first[0]["latents"], first[1]["latents"])
    # Batch k is the same whether reached by iterating or by resuming at k.
    it = ranks[0](0)
    seq = [next(it) for _ in range(5)]
    assert torch.equal(seq[4]["latents"], next(ranks[0](4))["latents"])


def test_read_ahead_threads_give_the_same_batches_in_the_same_order(tiny_cache, tiny_base_dir, tmp_path):
    # The H100 runs read batches in 4 threads: they must be exactly the batches read in order without them.
    plain, threaded = (training_batches(config(tiny_cache, tiny_base_dir, tmp_path, num_workers=n, image_ratio=0.25,
                                               strides=[1, 2]).resolved())(3) for n in (0, 4))
    for _ in range(12):
        a, b = next(plain), next(threaded)
        assert a["is_image"] == b["is_image"] and torch.equal(a["latents"], b["latents"])
        assert torch.equal(a["text"], b["text"]) and torch.equal(a["fps"], b["fps"])


def test_checkpointing_granularities_give_identical_training(tmp_path, tiny_cache, tiny_base_dir):
    losses = {}
    for g in ("none", "light-2", "selective-1", "selective", "full"):
        result = train(config(tiny_cache, tiny_base_dir, tmp_path / g, steps=3, gradient_checkpointing=g,
                              checkpoint_every=100), progress=False)
        losses[g] = [v for _, v in result["history"]]
        assert json.loads((tmp_path / g / "config.json").read_text())["gradient_checkpointing"] == g
    for g in ("light-2", "selective-1", "selective", "full"):
        assert losses["none"] == pytest.approx(losses[g], rel=1e-5)


def test_auto_checkpointing_resolves_to_the_fastest_level_that_fits(tmp_path, tiny_cache, tiny_base_dir):
    from sdvideo.training.dry_run import auto_checkpointing, memory_options, memory_warning, resolve_checkpointing
    from sdvideo.training.memory_estimate import USABLE_SHARE, estimate_training_memory

    cfg = config(tiny_cache, tiny_base_dir, tmp_path).resolved()
    assert cfg.gradient_checkpointing == "auto"  # the default
    unet = load_base(tiny_base_dir).unet.config
    assert resolve_checkpointing(cfg, unet, 8).gradient_checkpointing == "none"  # on the CPU
    gpu = dataclasses.replace(cfg, device="cuda")

    def peak(level):
        options = memory_options(dataclasses.replace(gpu, gradient_checkpointing=level), unet, 8)
        return estimate_training_memory(batch_size=cfg.batch_size, frames=cfg.frames, **options)["total_gib"]

    # A card whose usable share lies just above light-1+1's estimate (below none's, temporal's and light-1's)
    # picks it; one too small for everything gets full (and train() then warns).
    budget = peak("light-1+1") * 1.001 / USABLE_SHARE
    assert peak("none") > peak("temporal") > peak("light-1") > peak("light-1+1") * 1.001
    assert resolve_checkpointing(gpu, unet, 8, budget).gradient_checkpointing == "light-1+1"
    assert resolve_checkpointing(gpu, unet, 8, peak("none") * 2).gradient_checkpointing == "none"
    assert resolve_checkpointing(gpu, unet, 8, 1e-6).gradient_checkpointing == "full"
    given = dataclasses.replace(gpu, gradient_checkpointing="attention")
    assert resolve_checkpointing(given, unet, 8, 1e-6) is given  # a level given is kept
    # The level comes with its estimate, which the memory warning takes instead of tracing the level again.
    level, estimate = auto_checkpointing(gpu, unet, 8, budget)
    assert level == "light-1+1" and estimate == pytest.approx(peak("light-1+1"))
    assert auto_checkpointing(gpu, unet, 8, 1e-6) == ("full", None) and auto_checkpointing(cfg, unet, 8) == ("none", None)
    chosen = dataclasses.replace(gpu, gradient_checkpointing=level)
    with mock.patch("sdvideo.training.memory_estimate.estimate_training_memory", side_effect=AssertionError("traced")):
        assert memory_warning(chosen, unet, 8, budget, estimate_gib=estimate) is None


@pytest.mark.parametrize("regions", ["layers", "blocks"])
def test_compiled_training_uses_the_chosen_regions_and_trains_as_eager(tmp_path, tiny_cache, tiny_base_dir,
                                                                        compile_calls, regions, capsys):
    opts = dict(steps=2, checkpoint_every=100, gradient_checkpointing="selective")
    eager = train(config(tiny_cache, tiny_base_dir, tmp_path / "eager", **opts), progress=False)
    assert "compiling" not in capsys.readouterr().out  # auto on the CPU: eager
    compiled = train(config(tiny_cache, tiny_base_dir, tmp_path / "compiled", compile=regions, **opts), progress=False)
    assert f"compiling the UNet's {regions} (torch.compile)" in capsys.readouterr().out
    assert compile_calls == [{"regions": regions}]
    assert [v for _, v in compiled["history"]] == pytest.approx([v for _, v in eager["history"]], rel=1e-4)
    with pytest.raises(ValueError, match="--compile must be one of auto, on, off, layers, blocks, got 'model'"):
        config(tiny_cache, tiny_base_dir, tmp_path / "bad", compile="model").resolved()


def test_compile_auto_compiles_long_gpu_runs_and_blocks_for_the_longest(tmp_path):
    from sdvideo.cli import build_parser, train_options
    from sdvideo.training.config import BLOCK_REGIONS_MIN_STEPS, COMPILE_MIN_STEPS, resolve_compile

    triton = mock.patch("importlib.util.find_spec", return_value=object())
    no_triton = mock.patch("importlib.util.find_spec", return_value=None)
    with triton:
        assert resolve_compile("auto", cuda=True, steps=COMPILE_MIN_STEPS) == "layers"
        assert resolve_compile("auto", cuda=True, steps=BLOCK_REGIONS_MIN_STEPS) == "blocks"
        assert resolve_compile("auto", cuda=True, steps=COMPILE_MIN_STEPS - 1) == "off"
        assert resolve_compile("auto", cuda=False, steps=10**6) == "off"  # the CPU: eager
    with no_triton:  # inductor's GPU kernels need Triton
        assert resolve_compile("auto", cuda=True, steps=10**6) == "off"
    assert [resolve_compile(c, cuda=False, steps=1) for c in ("on", "off", True, False, "layers", "blocks")] == [
        "layers", "off", "layers", "off", "layers", "blocks"]
    with pytest.raises(ValueError, match="--compile must be one of auto, on, off, layers, blocks, got 'yes'"):
        resolve_compile("yes", cuda=True, steps=1)

    # The CLI: auto by default, --compile alone turns it on, --compile REGIONS names the regions; the resolved
    # config (saved with the run) holds the choice made, the regions following the run's length unless named.
    parse = lambda *a: train_options(build_parser().parse_args(["train", "--data", "d", "--base", "b", "--out", "o", *a]))  # noqa: E731
    assert parse()["compile"] == "auto" and parse("--compile")["compile"] == "on"
    assert parse("--compile", "off")["compile"] == "off" and parse("--compile", "blocks")["compile"] == "blocks"
    short = TrainConfig(**{**parse("--steps", str(BLOCK_REGIONS_MIN_STEPS - 1)), "device": "cpu"}).resolved()
    long = TrainConfig(**{**parse("--steps", str(BLOCK_REGIONS_MIN_STEPS), "--compile"), "device": "cpu"}).resolved()
    named = TrainConfig(**{**parse("--steps", "5", "--compile", "blocks"), "device": "cpu"}).resolved()
    assert (short.compile, long.compile, named.compile) == ("off", "blocks", "blocks")


def test_train_all_and_named_modules(tmp_path, tiny_cache, tiny_base_dir):
    from sdvideo.training.train import build_video_unet

    cfg = config(tiny_cache, tiny_base_dir, tmp_path, train="temporal+conv_out").resolved()
    video, _ = build_video_unet(cfg)
    names = {n for n, p in video.named_parameters() if p.requires_grad}
    assert "unet.conv_out.weight" in names and not any("conv_in" in n for n in names)
    with pytest.raises(ValueError, match="no module named"):
        build_video_unet(config(tiny_cache, tiny_base_dir, tmp_path, train="temporal+nope").resolved())


TWO_PROCESS_SCRIPT = """
import sys, torch
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train
from sdvideo.training.validation import Validator
cache, base, out = sys.argv[1:4]
result = train(TrainConfig(data=cache, base=base, out=out, frames=3, batch_size=2, steps=4, device="cpu",
                           lr=1e-3, checkpoint_every=2), progress=False)
import torch.distributed as dist
flat = torch.cat([p.detach().flatten() for p in result["model"].temporal_parameters()])
torch.save(flat, f"{out}/weights-rank{dist.get_rank()}.pt")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_hold_identical_weights(tmp_path, tiny_cache, tiny_base_dir):
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    out = tmp_path / "ddp"
    # `accelerate launch`, as a user runs several GPUs (--multi_gpu here means DDP; on CPUs it runs on gloo).
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                          str(_free_port()), str(script), str(tiny_cache), str(tiny_base_dir), str(out)],
                         env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, "\n".join(l for l in run.stderr.splitlines() if "rank1" in l or "Error" in l)[-4000:]
    w0, w1 = torch.load(out / "weights-rank0.pt"), torch.load(out / "weights-rank1.pt")
    assert torch.equal(w0, w1)
    single = train(config(tiny_cache, tiny_base_dir, tmp_path / "one", steps=4), progress=False)
    w_single = torch.cat([p.detach().flatten() for p in single["model"].temporal_parameters()])
    assert not torch.equal(w0, w_single)  # the two processes saw other data than one process alone
    assert read_losses(out)[-1][0] == 4


def test_optimizer_choice():
    from sdvideo.training.adamw8bit import AdamW8bit
    from sdvideo.training.optim import make_optimizer, resolve_optimizer

    assert resolve_optimizer("auto", "cpu") == "adamw" and resolve_optimizer("auto", "cuda") == "adamw8bit"
    with pytest.raises(ValueError, match="--optimizer"):
        resolve_optimizer("sgd", "cpu")
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer, built = make_optimizer([param], "adamw8bit", 1e-3, 0.0, "cpu")
    assert type(optimizer) is AdamW8bit and built == "adamw8bit (sdvideo, tensor ops)"
    optimizer, built = make_optimizer([param], "adamw", 1e-3, 0.0, "cpu")
    assert type(optimizer) is torch.optim.AdamW and built == "adamw"


def test_checkpoint_keeps_tensor_valued_optimizer_settings(tmp_path):
    # Some optimizers (torchao's 8-bit AdamW) hold `lr` as a tensor in their param groups (the LR schedule copies it).
    from sdvideo.training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3), foreach=False)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    schedule.step()
    path = save_checkpoint(tmp_path, 1, model, optimizer, dict(lr_schedule=schedule.state_dict()), None, {})
    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=torch.tensor(1e-3), foreach=False)
    state, _ = load_checkpoint(path, fresh, fresh_optimizer, torch.device("cpu"))
    lr = fresh_optimizer.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and torch.equal(lr, optimizer.param_groups[0]["lr"])
    assert torch.equal(fresh.weight, model.weight)
    fresh_schedule = torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, lambda step: 0.5)
    fresh_schedule.load_state_dict(state["lr_schedule"])
    assert fresh_schedule.last_epoch == schedule.last_epoch


def test_resumed_optimizer_state_follows_channels_last_weights(tmp_path):
    # A compiled run's trainable conv weights are channels-last (frame conditioning's conv_in, --train all);
    # fused AdamW with contiguous moments restored from the file updated the wrong elements.
    from sdvideo.training.checkpoint import load_checkpoint, save_checkpoint

    def conv_and_optimizer():
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)
        return conv, torch.optim.AdamW(conv.parameters(), lr=0.1, fused=True)

    def step(conv, optimizer):
        x = torch.arange(2 * 4 * 6 * 6, dtype=torch.float32).view(2, 4, 6, 6) / 100
        conv(x.contiguous(memory_format=torch.channels_last)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    conv, optimizer = conv_and_optimizer()
    step(conv, optimizer)
    path = save_checkpoint(tmp_path, 1, conv, optimizer, {}, None, {})
    step(conv, optimizer)  # the uninterrupted run's second step
    resumed, resumed_optimizer = conv_and_optimizer()
    load_checkpoint(path, resumed, resumed_optimizer, torch.device("cpu"))
    moment = resumed_optimizer.state[resumed.weight]["exp_avg"]
    assert moment.is_contiguous(memory_format=torch.channels_last) and resumed.weight.stride() == moment.stride()
    step(resumed, resumed_optimizer)
    torch.testing.assert_close(resumed.weight, conv.weight, rtol=1e-6, atol=1e-7)
