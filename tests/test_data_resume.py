"""Resumable and atomic prepare: interrupt a run anywhere, rerun, get what an uninterrupted run writes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import media
from sdvideo.data import encoder as encoder_mod
from sdvideo.data import journal as journal_mod
from sdvideo.data import shards as shards_mod
from sdvideo.data.cache import load_cache_info, load_video_latents, verify_cache
from sdvideo.data.prepare import prepare

SIZE = 16
SHARD_MB = 0.004  # ~4 KB: a 10-frame video is 5 KB of latents, so the run makes several shards


class Kill(BaseException):
    """A simulated kill: not an Exception, so nothing on the way catches it."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume_clips")
    media.write_video(d / "a.mkv", 40, 30, 40, 30)  # 14 frames at 10 fps
    media.write_video(d / "b.mkv", 30, 30, 40, 30, cut_at=[15])  # 10 frames, 2 shots
    media.write_video(d / "c.mkv", 8, 30, 40, 30)  # 3 frames: shorter than a clip, skipped
    media.write_gif(d / "d.gif", frames=12, fps=10)
    media.write_video(d / "e.mkv", 21, 30, 40, 30)  # 7 frames
    return d


def run(videos, out, base, **kw):
    return prepare([videos], out, base, fps=10, size=SIZE, caption="x", progress=False, batch_size=4,
                   shard_mb=SHARD_MB, **kw)


@pytest.fixture(scope="module")
def reference(videos, base, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    summary = run(videos, out, base)
    assert summary.used == 4 and len(summary.skipped) == 1
    return out


def assert_same_cache(out: Path, ref: Path) -> None:
    got, want = load_cache_info(out), load_cache_info(ref)
    assert [v["key"] for v in got["videos"]] == [v["key"] for v in want["videos"]]
    for a, b in zip(got["videos"], want["videos"]):
        assert {k: a[k] for k in a if k != "captions"} == {k: b[k] for k in b if k != "captions"}
        assert torch.equal(load_video_latents(out, a), load_video_latents(ref, b))
    assert [s["source"] for s in got["skipped"]] == [s["source"] for s in want["skipped"]]
    files = sorted(p.relative_to(ref).as_posix() for p in (ref / "latents").iterdir())
    assert sorted(p.relative_to(out).as_posix() for p in (out / "latents").iterdir()) == files
    for f in files:  # shards come out byte for byte the same
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
    assert verify_cache(out) == [] and not list(out.rglob("*.tmp"))


def count_encoded(monkeypatch):
    """Patch the VAE call to count encoded frames; returns the list of batch sizes."""
    real, seen = encoder_mod.encode_frames, []

    def counting(vae, frames, *args):
        seen.append(len(frames))
        return real(vae, frames, *args)

    monkeypatch.setattr(encoder_mod, "encode_frames", counting)
    return seen


@pytest.mark.parametrize("where", ["mid_video", "after_shard_fsync", "mid_journal_line", "second_shard"])
def test_interrupted_run_resumes_to_the_same_cache(where, videos, base, reference, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    calls = {"n": 0}
    if where in ("mid_video", "second_shard"):
        real_write = shards_mod.ShardWriter.write
        limit = 3 if where == "mid_video" else 5  # a.mkv = 4 batches, b.mkv = 3 batches of 4 frames

        def write(self, latents):
            calls["n"] += 1
            if calls["n"] == limit:
                real_write(self, latents[:1])  # a torn write: part of the batch reached the disk
                raise Kill()
            real_write(self, latents)

        monkeypatch.setattr(shards_mod.ShardWriter, "write", write)
    elif where == "after_shard_fsync":
        real_commit = shards_mod.ShardWriter.commit

        def commit(self):
            location = real_commit(self)
            calls["n"] += 1
            if calls["n"] == 2:
                raise Kill()  # latents durable, journal line not yet written
            return location

        monkeypatch.setattr(shards_mod.ShardWriter, "commit", commit)
    else:
        real_append = journal_mod.Journal.append

        def append(self, record):
            calls["n"] += 1
            if calls["n"] == 2:
                os.pwrite(self.fd, b'{"key": "half a li', self.pos)  # killed mid-line
                raise Kill()
            real_append(self, record)

        monkeypatch.setattr(journal_mod.Journal, "append", append)
    with pytest.raises(Kill):
        run(videos, out, base)
    monkeypatch.undo()
    before = load_cache_info(out)  # readable while interrupted; lists only complete videos
    assert verify_cache(out) == []
    committed = {v["key"] for v in before["videos"]}
    seen = count_encoded(monkeypatch)
    summary = run(videos, out, base)
    assert summary.used == 4 and summary.encoded == 4 - len(committed)
    frames_left = sum(v["frames"] for v in load_cache_info(reference)["videos"] if v["key"] not in committed)
    assert sum(seen) == frames_left + 3  # + the 3 frames of the too-short c.mkv, tried again
    assert_same_cache(out, reference)
    again = run(videos, out, base)
    assert again.encoded == 0 and again.used == 4


def test_killed_process_resumes(videos, base, reference, tmp_path):
    """A real SIGKILL of a `prepare` process (slowed down so that it dies mid-run)."""
    out = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import time
        from sdvideo.data import encoder
        from sdvideo.data.prepare import prepare
        from sdvideo.models.base import build_base
        real = encoder.encode_frames
        def slow(*a):
            time.sleep(0.15)
            return real(*a)
        encoder.encode_frames = slow
        prepare([{str(videos)!r}], {str(out)!r}, build_base("tiny", seed=0), fps=10, size={SIZE},
                caption="x", progress=False, batch_size=4, shard_mb={SHARD_MB})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    journal = out / "videos.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 1:
            time.sleep(0.2)  # into the next video (which takes 3 batches, >= 0.45 s)
            break
        time.sleep(0.05)
    assert proc.poll() is None, "prepare finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(load_cache_info(out)["videos"]) < 4 and verify_cache(out) == []
    summary = run(videos, out, base)
    assert summary.used == 4 and summary.encoded < 4
    assert_same_cache(out, reference)


def test_a_second_prepare_on_the_same_cache_is_refused(videos, base, tmp_path):
    out = tmp_path / "cache"
    out.mkdir()
    with open(out / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running prepare would
        with pytest.raises(ValueError, match="being written by another"):
            run(videos, out, base)
    assert run(videos, out, base).used == 4  # lock released: fine


def test_verify_cache_reports_damage(videos, base, reference, tmp_path):
    import shutil

    out = tmp_path / "cache"
    shutil.copytree(reference, out)
    entry = load_cache_info(out)["videos"][1]
    with open(out / entry["shard"], "r+b") as f:
        f.seek(entry["offset"] + 10)
        f.write(b"\x00\x7c")  # one float16 becomes inf
    problems = verify_cache(out)
    assert len(problems) == 1 and entry["source"] in problems[0] and "crc32" in problems[0]
