"""Run folders that cannot be lost: one `train` per --out, no overwriting a finished model or the base's
folder, `atomic_dir` that never leaves a folder missing, and VideoUNet's input shape check."""

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import sdvideo.training.train as train_module
from sdvideo.atomic_files import atomic_dir
from sdvideo.run_lock import exclusive
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train

SRC = Path(__file__).resolve().parents[1] / "src" / "sdvideo"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def config(cache, base, out, **kw):
    opts = dict(data=str(cache), base=str(base), out=str(out), frames=3, batch_size=2, steps=2, device="cpu",
                lr=1e-3, checkpoint_every=2, log_every=1)
    return TrainConfig(**{**opts, **kw})


def module_script(module: str, body: str) -> list[str]:
    """A python command that loads src/sdvideo/<module>.py by path (no torch import: starts in a blink), then
    runs `body` with it as `m`."""
    return [sys.executable, "-c", textwrap.dedent(f"""
        import importlib.util, os, sys, time
        spec = importlib.util.spec_from_file_location("m", {str(SRC / (module + ".py"))!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
    """) + textwrap.dedent(body)]


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the cache fails the test: what must be refused is refused before anything is loaded."""
    def loaded(*args, **kwargs):
        raise AssertionError("train went on to load the cache")

    monkeypatch.setattr(train_module, "load_cache_info", loaded)


# ---------------------------------------------------------------- one train per --out

def test_a_second_train_is_refused_at_once_and_a_killed_ones_lock_does_not_block(tmp_path, tiny_cache,
                                                                                 tiny_base_dir, monkeypatch):
    out = tmp_path / "run"
    holder = subprocess.Popen(module_script("run_lock", f"""
        with m.exclusive({str(out)!r}, "sdvideo train"):
            print("held", flush=True)
            time.sleep(120)
    """), stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        with monkeypatch.context() as m:  # refused before loading anything
            m.setattr(train_module, "load_cache_info", lambda *a, **k: pytest.fail("train loaded the cache"))
            with pytest.raises(ValueError) as refused:
                train(config(tiny_cache, tiny_base_dir, out), progress=False)
        message = str(refused.value)
        assert message == (f"{out} is being written by another `sdvideo train` (pid {holder.pid}); wait for it "
                           "to finish or choose another --out")
    finally:
        holder.send_signal(signal.SIGKILL)  # as a killed run: its lock file stays, its lock goes with it
        holder.wait()
    assert (out / ".lock").read_text().split()[0] == str(holder.pid)

    # The lock is held for the whole run: at its checkpoint, another writer is still refused.
    refusals = []
    save_checkpoint = train_module.save_checkpoint

    def checkpoint_and_try_the_lock(*args, **kwargs):
        with pytest.raises(ValueError, match=f"another `sdvideo train` \\(pid {os.getpid()}\\)") as second:
            with exclusive(out, "sdvideo train"):
                pass
        refusals.append(second.value)
        return save_checkpoint(*args, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", checkpoint_and_try_the_lock)
    assert train(config(tiny_cache, tiny_base_dir, out), progress=False)["steps"] == 2
    assert len(refusals) == 1
    with exclusive(out, "sdvideo train"):  # released at the end
        pass


def test_prepare_and_train_share_the_lock_and_say_who_holds_it(tmp_path):
    out = tmp_path / "folder"
    with exclusive(out, "sdvideo prepare"):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(out))} is being written by another `sdvideo prepare` "
                                             rf"\(pid {os.getpid()}\); wait for it to finish or choose another --out$"):
            with exclusive(out, "sdvideo train"):
                pass
    with exclusive(out, "sdvideo train"):
        pass


# ---------------------------------------------------------------- a finished model, the base's folder

@pytest.mark.parametrize("resume", [False, True])
def test_a_finished_model_without_checkpoints_is_not_started_over(tmp_path, tiny_cache, tiny_base_dir, no_loading,
                                                                  resume):
    out = tmp_path / "run"
    (out / "unet").mkdir(parents=True)
    (out / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"finished")
    (out / "loss.csv").write_text("step,loss\n1,0.5\n")
    expected = rf"^{re.escape(str(out))} already holds a finished model \(unet/\); choose a new --out or delete it$"
    with pytest.raises(ValueError, match=expected):
        train(config(tiny_cache, tiny_base_dir, out, resume=resume), progress=False)
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == b"finished"
    assert (out / "loss.csv").read_text() == "step,loss\n1,0.5\n"


def test_out_in_the_base_models_folder_is_refused(tmp_path, tiny_cache, tiny_base_dir, no_loading):
    base = tmp_path / "base"
    shutil.copytree(tiny_base_dir, base)
    (tmp_path / "link").symlink_to(base)
    before = sorted(p.relative_to(base) for p in base.rglob("*"))
    for out in (base, tmp_path / "link", tmp_path / "x" / ".." / "base"):  # compared resolved
        with pytest.raises(ValueError, match=rf"^--out {re.escape(str(out))} is the base model's folder; choose "):
            train(config(tiny_cache, base, out), progress=False)
    inside = rf"^--out {re.escape(str(base / 'run'))} is inside the base model's folder {re.escape(str(base))}; "
    with pytest.raises(ValueError, match=inside):
        train(config(tiny_cache, base, base / "run"), progress=False)
    assert sorted(p.relative_to(base) for p in base.rglob("*")) == before  # not even a lock file


# ---------------------------------------------------------------- atomic_dir

def test_atomic_dir_keeps_the_old_folder_when_the_new_one_fails_to_come_in(tmp_path, monkeypatch):
    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "old.bin").write_bytes(b"old")
    replace = os.replace

    def failing_rename_in(src, dst):  # the new folder's rename fails; others (aside, restore) work
        if Path(src).name == "unet.tmp":
            raise OSError("disk gone")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_rename_in)
    with pytest.raises(OSError, match="disk gone"):
        with atomic_dir(folder) as tmp:
            (tmp / "new.bin").write_bytes(b"new")
    assert [p.name for p in folder.iterdir()] == ["old.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"]


def test_atomic_dir_after_a_kill_between_the_renames_restores_the_old_folder(tmp_path):
    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "old.bin").write_bytes(b"old")
    # The process dies (no cleanup at all) where the new folder would be renamed in.
    subprocess.run(module_script("atomic_files", f"""
        replace = os.replace
        def killed(src, dst):
            if str(src).endswith("unet.tmp"):
                os._exit(9)
            replace(src, dst)
        os.replace = killed
        with m.atomic_dir({str(folder)!r}) as tmp:
            (tmp / "new.bin").write_bytes(b"new")
    """), env=ENV, check=False)
    assert (tmp_path / "unet.tmp" / "new.bin").exists()  # it died between the renames
    with pytest.raises(RuntimeError):  # the next writer of the folder repairs it first
        with atomic_dir(folder):
            raise RuntimeError("crash")
    assert [p.name for p in folder.iterdir()] == ["old.bin"]
    with atomic_dir(folder) as tmp:
        (tmp / "new.bin").write_bytes(b"new")
    assert [p.name for p in folder.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet"]


def test_atomic_dir_clears_the_old_copy_left_by_a_kill_after_the_new_folder_came_in(tmp_path):
    folder, aside = tmp_path / "unet", tmp_path / "unet.old"
    folder.mkdir()
    aside.mkdir()
    (folder / "new.bin").write_bytes(b"new")
    (aside / "old.bin").write_bytes(b"old")
    with atomic_dir(folder) as tmp:
        (tmp / "newer.bin").write_bytes(b"newer")
    assert [p.name for p in folder.iterdir()] == ["newer.bin"] and not aside.exists()


# ---------------------------------------------------------------- VideoUNet's input shape

def test_video_unet_says_what_shape_it_expects(video_unet):
    text = torch.randn(2, 5, video_unet.unet.config.cross_attention_dim)
    expected = r"^VideoUNet expects latents \(batch, channels, frames, height, width\) with channels=4; got "
    with pytest.raises(ValueError, match=expected + r"\(2, 4, 8, 8\)$"):  # an image batch
        video_unet(torch.randn(2, 4, 8, 8), 10, text)
    with pytest.raises(ValueError, match=expected + r"\(2, 3, 4, 8, 8\); for \(batch, frames, channels, \.\.\.\) "
                                                    r"pass sample\.transpose\(1, 2\)$"):
        video_unet(torch.randn(2, 3, 4, 8, 8), 10, text)
    with torch.no_grad():
        assert video_unet(torch.randn(2, 4, 3, 8, 8), 10, text).sample.shape == (2, 4, 3, 8, 8)
        assert video_unet(torch.randn(2, 4, 4, 8, 8), 10, text).sample.shape == (2, 4, 4, 8, 8)  # frames = channels
