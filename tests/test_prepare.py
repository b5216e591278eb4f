"""The latent cache: prepare (layout, captions, bad videos, resume, settings) and ClipDataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import media
from sdvideo.data import prepare as prepare_mod
from sdvideo.data.dataset import ClipDataset, empty_text_embedding, load_cache_info
from sdvideo.data.prepare import prepare
from sdvideo.data.video_io import decode_video
from sdvideo.models.base import build_base

SIZE = 16  # tiny VAE downsamples 2x -> 8x8 latents


@pytest.fixture(scope="module")
def base():
    return build_base("tiny", seed=0)


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
    run([videos], out, base, batch_size=7)
    return out


def test_layout(cache_dir, videos, base):
    info = load_cache_info(cache_dir)
    assert info["version"] == 1 and info["fps"] == 10.0 and info["size"] == SIZE
    assert info["latent_shape"] == [4, 8, 8] and info["scaling_factor"] == pytest.approx(0.18215)
    assert info["base"] == json.loads(json.dumps(base.identity()))
    assert info["captions"] == ["", "squares", "a blue square", "moving right"]
    by_src = {v["source"]: v for v in info["videos"]}
    a, b, c = (by_src[str((videos / n).resolve())] for n in ("a.mkv", "b.mp4", "sub/c.gif"))
    assert (a["frames"], b["frames"], c["frames"]) == (20, 10, 12)
    assert a["captions"] == [1] and b["captions"] == [2, 3] and c["captions"] == [1]
    assert len({v["name"] for v in info["videos"]}) == 3 and info["skipped"] == []
    lat = load_file(str(cache_dir / a["file"]))["latents"]
    assert lat.dtype == torch.float16 and lat.shape == (20, 4, 8, 8)
    text = load_file(str(cache_dir / "text.safetensors"))["embeddings"]
    assert text.dtype == torch.float16 and text.shape == (4, 77, 32)
    want = base.encode_text(["", "moving right"])
    assert torch.allclose(text[[0, 3]].float(), want, atol=2e-3)
    assert torch.allclose(empty_text_embedding(cache_dir), want[0], atol=2e-3)
    assert not list(cache_dir.rglob("*.tmp"))


def test_latents_are_scaled_posterior_means(cache_dir, videos, base):
    info = load_cache_info(cache_dir)
    entry = next(v for v in info["videos"] if v["source"].endswith("a.mkv"))
    frames = decode_video(videos / "a.mkv", fps=10, size=SIZE).frames[:4]  # (4, 16, 16, 3)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        want = base.vae.encode(x).latent_dist.mean * base.vae.config.scaling_factor
    got = load_file(str(cache_dir / entry["file"]))["latents"][:4].float()
    assert torch.allclose(got, want, atol=2e-3)


def test_bad_videos_are_skipped(tmp_path, base, capsys):
    d = tmp_path / "in"
    d.mkdir()
    good = media.write_video(d / "good.mp4", 30, 30, 32, 32, codec="libx264")
    bad = [(d / "zero.mp4"), media.write_truncated(good, d / "trunc.mp4"),
           media.write_random_bytes(d / "random.mov"), media.write_audio_only(d / "audio.mp4"),
           tmp_path / "missing.mkv"]
    bad[0].write_bytes(b"")
    summary = run([d, bad[-1]], tmp_path / "cache", base)
    assert summary.used == 1 and summary.frames == 10 and summary.seconds == pytest.approx(1.0)
    assert sorted(p for p, _ in summary.skipped) == sorted(str(p.resolve()) for p in bad)
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 5 and all("skipping" in w for w in warnings)
    info = load_cache_info(tmp_path / "cache")
    assert len(info["videos"]) == 1 and len(info["skipped"]) == 5
    nothing = run(bad[:2], tmp_path / "cache2", base)
    assert nothing.used == 0 and len(nothing.skipped) == 2


def test_interrupted_prepare_resumes(videos, base, cache_dir, tmp_path, monkeypatch):
    real, seen = prepare_mod.encode_frames, []

    def flaky(vae, frames, *args):
        seen.append(id(frames))
        if len(seen) > 1:  # batch_size 64: one call per video; die on the second video
            raise RuntimeError("simulated crash")
        return real(vae, frames, *args)

    monkeypatch.setattr(prepare_mod, "encode_frames", flaky)
    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="simulated"):
        run([videos], out, base, batch_size=64)
    assert len(load_cache_info(out)["videos"]) == 1
    monkeypatch.setattr(prepare_mod, "encode_frames", real)
    summary = run([videos], out, base, batch_size=7)
    assert summary.used == 3 and summary.encoded == 2
    resumed, full = load_cache_info(out), load_cache_info(cache_dir)
    assert [v["name"] for v in resumed["videos"]] == [v["name"] for v in full["videos"]]
    for v in full["videos"]:
        a = load_file(str(out / v["file"]))["latents"]
        b = load_file(str(cache_dir / v["file"]))["latents"]
        assert torch.equal(a, b)  # posterior mean: deterministic, batch size does not matter
    again = run([videos], out, base)  # nothing left to do
    assert again.encoded == 0 and again.used == 3
    subset = run([videos / "sub"], out, base)  # the cache keeps videos not passed this time
    assert subset.encoded == 0 and subset.used == 3 and subset.frames == 42


def test_settings_mismatch_needs_new_out_or_overwrite(videos, base, tmp_path):
    out = tmp_path / "cache"
    run([videos / "sub"], out, base)
    with pytest.raises(ValueError, match="--overwrite") as err:
        prepare([videos / "sub"], out, base, fps=5, size=SIZE, progress=False)
    assert "\n" not in str(err.value) and "fps" in str(err.value)
    summary = prepare([videos / "sub"], out, base, fps=5, size=SIZE, progress=False,
                      overwrite=True)
    assert summary.used == 1 and load_cache_info(out)["videos"][0]["frames"] == 6
    with pytest.raises(ValueError, match="multiple of 2"):
        prepare([videos], tmp_path / "x", base, size=15, progress=False)


def test_clip_dataset(cache_dir):
    info = load_cache_info(cache_dir)
    lengths = [v["frames"] for v in info["videos"]]  # 20, 10, 12 in some order
    ds = ClipDataset(cache_dir, frames=5)
    assert len(ds) == sum(t - 4 for t in lengths)
    item = ds[0]
    assert item["latents"].shape == (4, 5, 8, 8) and item["latents"].dtype == torch.float32
    assert item["text"].shape == (77, 32) and item["fps"] == 10.0 and item["video"] == 0
    strided = ClipDataset(cache_dir, frames=3, stride=4)
    assert len(strided) == sum(max(0, t - 8) for t in lengths)
    v, s = strided.locate(len(strided) - 1)
    item = strided[len(strided) - 1]
    full = load_file(str(cache_dir / info["videos"][v]["file"]))["latents"]
    assert torch.equal(item["latents"], full[s : s + 9 : 4].float().permute(1, 0, 2, 3))
    assert item["fps"] == 2.5 and item["video"] == v
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True, num_workers=2)))
    assert batch["latents"].shape == (4, 4, 5, 8, 8) and batch["text"].shape == (4, 77, 32)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_clip_dataset_errors(cache_dir, tmp_path):
    with pytest.raises(ValueError, match="21 frames needed") as err:
        ClipDataset(cache_dir, frames=21)
    assert str(cache_dir) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        load_cache_info(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        ClipDataset(tmp_path)
