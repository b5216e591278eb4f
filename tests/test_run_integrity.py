"""Run folders stay what they were trained as: the base a run names, what --resume may change, the cache
eval reads, damaged checkpoints and damaged latent shards."""

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sdvideo.data.cache import load_cache_info
from sdvideo.data.dataset import ClipDataset
from sdvideo.models.base import build_base, load_base
from sdvideo.sampling.pipeline import VideoPipeline
from sdvideo.training.checkpoint import MANIFEST, checkpoint_damage, checkpoint_dirs
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


def config(cache, base, out, **kw):
    opts = dict(data=str(cache), base=str(base), out=str(out), frames=3, batch_size=2, steps=4, device="cpu",
                lr=1e-3, checkpoint_every=2, log_every=1)
    return TrainConfig(**{**opts, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache, tiny_base_dir):
    """A finished 4-step run (checkpoints at steps 2 and 4) trained with --base relative to the working folder."""
    run = tmp_path_factory.mktemp("integrity") / "run"
    here = os.getcwd()
    os.chdir(tiny_base_dir.parent)
    try:
        train(config(tiny_cache, tiny_base_dir.name, run), progress=False)
    finally:
        os.chdir(here)
    return run


def run_copy(run, dest, **changes):
    """A run folder to sample from: `run`'s unet/ and its config.json with `changes` (None deletes a key)."""
    shutil.copytree(run / "unet", dest / "unet")
    saved = json.loads((run / "config.json").read_text())
    saved.update(changes)
    (dest / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if v is not None}))
    return dest


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_run_names_its_base_for_any_working_folder_and_refuses_another(trained, tiny_base_dir, tmp_path,
                                                                         monkeypatch):
    saved = json.loads((trained / "config.json").read_text())
    right = load_base(tiny_base_dir)
    assert saved["base"] == str(tiny_base_dir) and saved["base_identity"]["vae"] == right.identity()["vae"]
    # Another working folder holding another base under the name typed at train time: the run's own base loads.
    build_base("tiny", seed=1).save(tmp_path / tiny_base_dir.name)
    monkeypatch.chdir(tmp_path)
    assert same_weights(VideoPipeline.from_run(trained).text_encoder, right.text_encoder)

    # Pointed at another base (config.json edited, or base=): one line naming both paths and the fix.
    other = tmp_path / tiny_base_dir.name
    for run, kwargs in ((run_copy(trained, tmp_path / "edited", base=str(other)), {}),
                        (trained, dict(base=other))):
        with pytest.raises(ValueError) as err:
            VideoPipeline.from_run(run, **kwargs)
        message = str(err.value)
        assert "\n" not in message and str(other) in message and str(tiny_base_dir) in message
        assert "differs" in message and str(run / "config.json") in message

    # An older run (no identity, --base as typed): found beside the run's folders, not in the working folder.
    old = run_copy(trained, tmp_path / "project" / "runs" / "old", base=tiny_base_dir.name, base_identity=None,
                   base_trained_on=None, base_from_run=None)
    shutil.copytree(tiny_base_dir, tmp_path / "project" / tiny_base_dir.name)
    assert same_weights(VideoPipeline.from_run(old).text_encoder, right.text_encoder)


def test_resume_refuses_options_that_define_the_run_and_records_the_others(trained, tiny_cache, tiny_base_dir,
                                                                            tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "config.json").read_text()
    relabelled = tmp_path / "relabelled"  # the same latents with other captions: other data
    shutil.copytree(tiny_cache, relabelled)
    info = json.loads((relabelled / "cache.json").read_text())
    (relabelled / "cache.json").write_text(json.dumps({**info, "captions": ["", "a sliding square"]}))
    with pytest.raises(ValueError) as err:
        train(config(relabelled, tiny_base_dir, run, steps=6, resume=True, lr=2e-3, seed=1, frames=4), progress=False)
    message = str(err.value)
    assert "\n" not in message and str(run) in message and "new --out" in message
    assert "--lr 0.001 -> 0.002" in message and "--seed 0 -> 1" in message and "--frames 3 -> 4" in message
    assert f"--data {tiny_cache} -> {relabelled} (other videos or latents)" in message
    assert (run / "config.json").read_text() == before

    # The same VAE and text encoder (the cache fits) beside another UNet: another base for the frozen layers.
    other = load_base(tiny_base_dir)
    with torch.no_grad():
        for p in other.unet.parameters():
            p.add_(0.01)
    other.save(tmp_path / "other-base")
    with pytest.raises(ValueError, match=r"--base \S+ -> \S+other-base \(UNet differs"):
        train(config(tiny_cache, tmp_path / "other-base", run, steps=6, resume=True), progress=False)

    # A copy of the base elsewhere, more steps, another logging cadence: resumed, and recorded.
    moved = tmp_path / "moved-base"
    shutil.copytree(tiny_base_dir, moved)
    assert train(config(tiny_cache, moved, run, steps=6, log_every=3, resume=True), progress=False)["steps"] == 6
    saved = json.loads((run / "config.json").read_text())
    assert saved["resumed"] == [{"step": 4, "checkpoint": "step-0000004", "changed": {
        "base": [str(tiny_base_dir), str(moved)], "steps": [4, 6], "log_every": [1, 3]}}]
    assert saved["base"] == str(moved) and saved["steps"] == 6


def test_a_run_saved_before_the_options_merged_resumes(trained, tiny_cache, tiny_base_dir, tmp_path):
    """A run whose config.json and checkpoints were written before --stride merged into --strides and
    --compile-regions into --compile (and before the optimizer's auto was resolved): --resume with the same
    options goes on, recording only what it changed."""
    from sdvideo.training.checkpoint import _write_manifest

    run = tmp_path / "old"
    shutil.copytree(trained, run)
    legacy = dict(stride=1, strides=None, compile=False, compile_regions="layers", optimizer="auto")
    for checkpoint in checkpoint_dirs(run):
        state = json.loads((checkpoint / "state.json").read_text())
        state["config"] = {**{k: v for k, v in state["config"].items() if k not in legacy}, **legacy}
        (checkpoint / "state.json").write_text(json.dumps(state))
        _write_manifest(checkpoint)  # as that version wrote it
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**{k: v for k, v in saved.items() if k not in legacy}, **legacy}))
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())).strides == [1]
    assert train(config(tiny_cache, tiny_base_dir, run, steps=6, resume=True), progress=False)["steps"] == 6
    saved = json.loads((run / "config.json").read_text())
    assert saved["resumed"] == [{"step": 4, "checkpoint": "step-0000004", "changed": {"steps": [4, 6]}}]
    assert (saved["strides"], saved["compile"], saved["optimizer"]) == ([1], "off", "adamw")


def test_eval_refuses_a_cache_made_with_another_base(trained, tiny_cache, tmp_path):
    from sdvideo.eval.evaluate import evaluate

    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    info = json.loads((cache / "cache.json").read_text())
    info["base"]["vae"]["fingerprint"] = "0" * 16  # as recorded by prepare with another VAE
    (cache / "cache.json").write_text(json.dumps(info))
    with pytest.raises(ValueError) as err:
        evaluate(trained, cache, tmp_path / "report", samples=1, steps=1, buckets=1, per_bucket=1, clips=1, frames=2,
                 device="cpu")
    message = str(err.value)
    assert "\n" not in message and str(cache) in message and "prepared with another base model" in message


def test_resume_skips_a_damaged_checkpoint_for_the_newest_intact_one(trained, tiny_cache, tiny_base_dir, tmp_path,
                                                                     capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    weights = run / "checkpoints" / "step-0000004" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated copy
    capsys.readouterr()
    assert train(config(tiny_cache, tiny_base_dir, run, steps=6, resume=True), progress=False)["steps"] == 6
    lines = [line for line in capsys.readouterr().out.splitlines() if " is damaged" in line]
    assert len(lines) == 1 and "step-0000004" in lines[0] and "resuming from" in lines[0]
    assert lines[0].rstrip().split("resuming from ")[1].startswith(str(run / "checkpoints" / "step-0000002"))
    assert (run / "checkpoints" / "step-0000004.damaged").is_dir()
    assert [d.name for d in checkpoint_dirs(run)] == ["step-0000002", "step-0000004", "step-0000006"]
    assert checkpoint_damage(checkpoint_dirs(run)[-1]) is None  # written with its manifest


def test_garbage_under_a_valid_header_and_truncation_without_a_manifest_are_found(trained, tmp_path):
    checkpoint = tmp_path / "step-0000004"
    shutil.copytree(trained / "checkpoints" / "step-0000004", checkpoint)
    assert checkpoint_damage(checkpoint) is None
    file = checkpoint / "optimizer.safetensors"
    data = bytearray(file.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    data[start:] = np.full((len(data) - start) // 2, np.nan, np.float16).tobytes()  # the header stays valid
    file.write_bytes(bytes(data))
    assert "optimizer.safetensors fails its crc32 check" in checkpoint_damage(checkpoint)

    older = tmp_path / "older"  # a checkpoint of an older sdvideo: no manifest, only the files' own structure
    shutil.copytree(trained / "checkpoints" / "step-0000004", older)
    (older / MANIFEST).unlink()
    assert checkpoint_damage(older) is None
    file = older / "ema.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    assert "ema.safetensors has" in checkpoint_damage(older)


def test_nan_stop_names_the_newest_intact_checkpoint(tiny_cache, tiny_base_dir, tmp_path, monkeypatch):
    import sdvideo.training.train as train_module

    real_save, real_loss = train_module.save_checkpoint, train_module.diffusion_loss
    calls = {"n": 0}

    def save_then_damage(run, step, *args, **kwargs):
        path = real_save(run, step, *args, **kwargs)
        if step == 4:  # damaged on disk after it was written
            (path / "trainable.safetensors").write_bytes(b"\0" * 64)
        return path

    def nan_after_four(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_damage)
    monkeypatch.setattr(train_module, "diffusion_loss", nan_after_four)
    with pytest.warns(UserWarning, match="skipped the update"):
        with pytest.raises(FloatingPointError, match=r"Last good checkpoint: \S+step-0000002\."):
            train(config(tiny_cache, tiny_base_dir, tmp_path / "r", steps=20, max_bad_steps=2), progress=False)


def test_a_damaged_latent_shard_is_refused_on_first_read_naming_the_file(tiny_cache, tiny_base_dir, tmp_path,
                                                                         monkeypatch):
    from sdvideo.data import shards

    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    sums = []

    def counted(data, *start):
        sums.append(len(memoryview(data).cast("B")))
        return zlib.crc32(data, *start)

    monkeypatch.setattr(shards, "zlib", SimpleNamespace(crc32=counted))
    clips = ClipDataset(cache, frames=3)
    for i in range(len(clips)):
        clips[i]
    videos = load_cache_info(cache)["videos"]
    assert sums == [v["nbytes"] for v in videos]  # each video checked once, on its first read, not per clip

    for entry in videos:  # NaN over a few latents of every video
        with open(cache / entry["shard"], "r+b") as f:
            f.seek(entry["offset"] + 64)
            f.write(np.full(32, np.nan, np.float16).tobytes())
    clips = ClipDataset(cache, frames=3)
    with pytest.raises(ValueError) as err:
        clips[0]
    message = str(err.value)
    assert "\n" not in message and str(cache / videos[0]["shard"]) in message and "crc32" in message
    assert "--overwrite" in message and "videos.jsonl" in message
    with pytest.raises(ValueError, match="crc32"):  # training stops at once instead of skipping NaN steps
        train(config(cache, tiny_base_dir, tmp_path / "r", steps=2), progress=False)
