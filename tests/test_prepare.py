"""The latent cache: prepare (layout, captions, bad input, settings, base match) and ClipDataset basics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import media
from sdvideo.data.cache import (
    check_cache_matches,
    check_cache_matches_identity,
    load_video_latents,
    verify_cache,
)
from sdvideo.data.dataset import ClipDataset, empty_text_embedding, load_cache_info
from sdvideo.data.prepare import prepare
from sdvideo.data.video_io import decode_video
from sdvideo.models.base import build_base

SIZE = 16  # tiny VAE downsamples 2x -> 8x8 latents


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """clips/: a.mkv (2 s, 30 fps, 49x37), b.mp4 (1 s, 30 fps, h264) + sidecar, sub/c.gif (1.2 s)."""
    d = tmp_path_factory.mktemp("clips")
    media.write_video(d / "a.mkv", 60, 30, 49, 37)
    media.write_video(d / "b.mp4", 30, 30, 48, 36, codec="libx264")
    (d / "b.txt").write_text("a blue square\n\nmoving right\n", encoding="utf-8")
    (d / "sub").mkdir()
    media.write_gif(d / "sub" / "c.gif", frames=12, fps=10)
    (d / "notes.md").write_text("not a video")
    return d


def run(videos, out, base, **kw):
    kw.setdefault("progress", False)
    return prepare(videos, out, base, fps=10, size=SIZE, caption="squares", **kw)


@pytest.fixture(scope="module")
def cache_dir(videos, base, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    run([videos], out, base, batch_size=7, shard_mb=0.003)  # ~3 KB shards: 1 video each here
    return out


def test_layout(cache_dir, videos, base):
    info = load_cache_info(cache_dir)
    assert info["version"] == 2 and info["fps"] == 10.0 and info["size"] == SIZE
    assert info["latent_shape"] == [4, 8, 8] and info["scaling_factor"] == pytest.approx(0.18215)
    assert info["base"] == json.loads(json.dumps(base.identity())) and info["base_source"] == "preset:tiny"
    assert info["captions"] == ["", "squares", "a blue square", "moving right"]
    by_src = {v["source"]: v for v in info["videos"]}
    a, b, c = (by_src[str((videos / n).resolve())] for n in ("a.mkv", "b.mp4", "sub/c.gif"))
    assert (a["frames"], b["frames"], c["frames"]) == (20, 10, 12)
    assert a["captions"] == [1] and b["captions"] == [2, 3] and c["captions"] == [1]
    assert a["segments"] == [[0, 20]] and a["shape"] == [20, 4, 8, 8]
    assert len({v["name"] for v in info["videos"]}) == 3 and info["skipped"] == []
    assert len({v["shard"] for v in info["videos"]}) == 3  # tiny shard size: a new shard per video
    lat = load_video_latents(cache_dir, a)
    assert lat.dtype == torch.float16 and lat.shape == (20, 4, 8, 8)
    text = load_file(str(cache_dir / "text.safetensors"))["embeddings"]
    assert text.dtype == torch.float16 and text.shape == (4, 77, 32)
    want = base.encode_text(["", "moving right"])
    assert torch.allclose(text[[0, 3]].float(), want, atol=2e-3)
    assert torch.allclose(empty_text_embedding(cache_dir), want[0], atol=2e-3)
    assert not list(cache_dir.rglob("*.tmp")) and verify_cache(cache_dir) == []


def test_latents_are_scaled_posterior_means(cache_dir, videos, base):
    info = load_cache_info(cache_dir)
    entry = next(v for v in info["videos"] if v["source"].endswith("a.mkv"))
    frames = decode_video(videos / "a.mkv", fps=10, size=SIZE).frames[:4]  # (4, 16, 16, 3)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        want = base.vae.encode(x).latent_dist.mean * base.vae.config.scaling_factor
    got = load_video_latents(cache_dir, entry)[:4].float()
    assert torch.allclose(got, want, atol=2e-3)
    assert next(base.vae.parameters()).dtype == torch.float32  # prepare put the VAE back


def test_bad_input_is_skipped_with_one_line_warnings(tmp_path, base, capsys):
    d = tmp_path / "in"
    d.mkdir()
    good = media.write_video(d / "good.mp4", 30, 30, 32, 32, codec="libx264")
    media.write_text(d / "good.txt", "caf\xe9 au lait\n".encode("latin-1"))  # not UTF-8
    bad = [d / "zero.mp4", media.write_truncated(good, d / "trunc.mp4"),
           media.write_random_bytes(d / "random.mov"), media.write_audio_only(d / "audio.mp4"),
           media.write_video(d / "short.mkv", 4, 30, 16, 16),  # 0.13 s: 2 frames at 10 fps
           tmp_path / "missing.mkv"]
    bad[0].write_bytes(b"")
    unreadable = media.copy(good, tmp_path / "locked.mp4")
    os.chmod(unreadable, 0)
    as_root = os.access(unreadable, os.R_OK)  # root reads anything: nothing to test then
    summary = run([d, bad[-1], unreadable], tmp_path / "cache", base)
    used = 1 + as_root
    assert summary.used == used and summary.frames == 10 * used and summary.seconds == pytest.approx(used)
    assert summary.clips == 6 * used and summary.hours == pytest.approx(used / 3600)
    want_bad = [str(p.resolve()) for p in bad] + ([] if as_root else [str(unreadable)])
    assert sorted(p for p, _ in summary.skipped) == sorted(want_bad)
    reasons = dict(summary.skipped)
    assert "shorter than one clip" in reasons[str(bad[4])] and "empty" in reasons[str(bad[0])]
    if not as_root:
        assert "permission denied" in reasons[str(unreadable)]
    err = capsys.readouterr().err.splitlines()
    warnings = [ln for ln in err if ln.startswith("warning:")]
    assert sum("skipping" in w for w in warnings) == len(want_bad)
    assert any(str(d / "good.txt") in w and "not UTF-8" in w for w in warnings)  # names the file
    info = load_cache_info(tmp_path / "cache")
    assert len(info["videos"]) == used and len(info["skipped"]) == len(want_bad)
    assert info["captions"] == ["", "squares"]  # the bad sidecar was ignored: --caption instead
    assert "videos used" in summary.line() and "clips of 5 frames" in summary.line()
    nothing = run(bad[:2], tmp_path / "cache2", base)
    assert nothing.used == 0 and len(nothing.skipped) == 2


def test_settings_mismatch_needs_new_out_or_overwrite(videos, base, tmp_path):
    out = tmp_path / "cache"
    run([videos / "sub"], out, base)
    with pytest.raises(ValueError, match="--overwrite") as err:
        prepare([videos / "sub"], out, base, fps=5, size=SIZE, progress=False)
    assert "\n" not in str(err.value) and "fps" in str(err.value)
    other = build_base("tiny", seed=1)
    with pytest.raises(ValueError, match="VAE differs"):
        prepare([videos / "sub"], out, other, fps=10, size=SIZE, progress=False)
    summary = prepare([videos / "sub"], out, base, fps=5, size=SIZE, progress=False, overwrite=True)
    assert summary.used == 1 and load_cache_info(out)["videos"][0]["frames"] == 6
    with pytest.raises(ValueError, match="multiple of 2"):
        prepare([videos], tmp_path / "x", base, size=15, progress=False)


def test_old_cache_version_is_refused(tmp_path):
    (tmp_path / "cache.json").write_text(json.dumps({"version": 1, "videos": [], "captions": [""]}))
    with pytest.raises(ValueError, match="version 1 .*rerun prepare with --overwrite"):
        load_cache_info(tmp_path)


def test_cache_must_match_the_base(cache_dir, base):
    check_cache_matches(cache_dir, base)  # same base: fine
    with pytest.raises(ValueError, match="VAE differs .*fingerprint") as err:
        check_cache_matches(cache_dir, build_base("tiny", seed=1))
    assert str(cache_dir) in str(err.value) and "\n" not in str(err.value)
    info, ident = load_cache_info(cache_dir), base.identity()
    te = ident["text_encoder"]
    text = dict(ident, text_encoder=dict(te, config=dict(te["config"], hidden_size=64)))
    with pytest.raises(ValueError, match="text encoder differs .*hidden_size"):
        check_cache_matches_identity(info, text)
    with pytest.raises(ValueError, match="scaling factor differs"):
        check_cache_matches_identity(info, dict(ident, scaling_factor=0.13025))


def test_clip_dataset(cache_dir):
    info = load_cache_info(cache_dir)
    lengths = [v["frames"] for v in info["videos"]]  # 20, 10, 12 in some order
    ds = ClipDataset(cache_dir, frames=5)
    assert len(ds) == sum(t - 4 for t in lengths)
    item = ds[0]
    assert item["latents"].shape == (4, 5, 8, 8) and item["latents"].dtype == torch.float32
    assert item["text"].shape == (77, 32) and item["fps"] == 10.0 and item["video"] == 0
    assert item["is_image"] is False and item["stride"] == 1
    strided = ClipDataset(cache_dir, frames=3, stride=4)
    assert len(strided) == sum(max(0, t - 8) for t in lengths)
    v, s = strided.locate(len(strided) - 1)
    item = strided[len(strided) - 1]
    full = load_video_latents(cache_dir, info["videos"][v])
    assert torch.equal(item["latents"], full[s : s + 9 : 4].float().permute(1, 0, 2, 3))
    assert item["fps"] == 2.5 and item["video"] == v
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True, num_workers=2)))
    assert batch["latents"].shape == (4, 4, 5, 8, 8) and batch["text"].shape == (4, 77, 32)
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert np.isfinite(ds[-1]["latents"].numpy()).all()


def test_clip_dataset_errors(cache_dir, tmp_path):
    with pytest.raises(ValueError, match="21 frames needed") as err:
        ClipDataset(cache_dir, frames=21)
    assert str(cache_dir) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="random_crop 9"):
        ClipDataset(cache_dir, random_crop=9)
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        load_cache_info(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        ClipDataset(tmp_path)


def test_overwrite_keeps_the_old_cache_until_the_new_one_holds_a_video(videos, base, tmp_path):
    out = tmp_path / "cache"
    run([videos / "sub"], out, base)
    before = (out / "videos.jsonl").read_bytes()
    not_video = tmp_path / "typo"
    not_video.mkdir()
    (not_video / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="kept as it was") as err:
        prepare([not_video], out, base, fps=5, size=SIZE, progress=False, overwrite=True)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
    assert (out / "videos.jsonl").read_bytes() == before and load_cache_info(out)["fps"] == 10.0
    assert not (tmp_path / "cache.overwrite").exists() and not (tmp_path / "cache.old").exists()
    # a kill between the swap's two renames: the next run puts the old cache back first
    os.replace(out, tmp_path / "cache.old")
    summary = prepare([videos / "sub"], out, base, fps=5, size=SIZE, progress=False, overwrite=True)
    assert summary.used == 1 and summary.out == out and load_cache_info(out)["fps"] == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "typo"]
