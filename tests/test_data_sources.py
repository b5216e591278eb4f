"""Inputs of prepare: folders, globs, CSV/JSONL manifests (windows, several captions), sidecars."""

from __future__ import annotations

import json

import pytest

import media
from sdvideo.data.cache import load_cache_info
from sdvideo.data.dataset import ClipDataset
from sdvideo.data.prepare import prepare
from sdvideo.data.sources import collect_jobs
from sdvideo.models.base import build_base


@pytest.fixture()
def tree(tmp_path):
    d = tmp_path / "data"
    (d / "x" / "y").mkdir(parents=True)
    media.write_video(d / "one.mkv", 30, 30, 32, 24)
    media.write_video(d / "x" / "two.mkv", 30, 30, 32, 24)
    media.write_gif(d / "x" / "y" / "three.gif", frames=8)
    (d / "x" / "two.txt").write_text("two, sidecar\n\nsecond line\n", encoding="utf-8")
    media.write_text(d / "one.txt", b"\xff\xfe bad bytes")
    return d


def test_folders_globs_dedupe_and_sidecars(tree):
    warnings = []
    jobs = collect_jobs([tree, str(tree / "**" / "*.mkv"), str(tree / "nothing*.mp4")], "default",
                        warnings.append)
    assert [j.path.name for j in jobs] == ["one.mkv", "two.mkv", "three.gif"]  # glob matches deduped
    assert jobs[1].captions == ["two, sidecar", "second line"] and jobs[2].captions == ["default"]
    assert jobs[0].captions == ["default"]  # its sidecar is not UTF-8
    assert any(str(tree / "one.txt") in w and "not UTF-8" in w for w in warnings)
    assert any("no file matches" in w and "nothing*.mp4" in w for w in warnings)
    assert all("\n" not in w for w in warnings)
    assert len({j.name for j in jobs}) == 3 and jobs[0].key == str((tree / "one.mkv").resolve())


def test_csv_manifest(tree):
    manifest = tree / "list.csv"
    manifest.write_text(
        "path,caption,start,end\n"
        "one.mkv,a red gradient,,\n"
        "one.mkv,a blue square,,\n"  # same video again: a second caption
        "x/two.mkv,,0.25,0.75\n"  # no caption: the sidecar's; a window
        "x/two.mkv,the end,0.5,\n"  # another window of the same file: another job
        "x/two.mkv,bad,2,1\n"  # end before start: warned, skipped
        f"{tree / 'x' / 'y' / 'three.gif'},\"quoted, with comma\",,\n", encoding="utf-8")
    warnings = []
    jobs = collect_jobs([manifest], "default", warnings.append)
    assert [(j.path.name, j.start, j.end) for j in jobs] == [
        ("one.mkv", None, None), ("two.mkv", 0.25, 0.75), ("two.mkv", 0.5, None), ("three.gif", None, None)]
    assert jobs[0].captions == ["a red gradient", "a blue square"]
    assert jobs[1].captions == ["two, sidecar", "second line"] and jobs[2].captions == ["the end"]
    assert jobs[3].captions == ["quoted, with comma"]
    assert len(warnings) == 1 and "list.csv:6" in warnings[0] and "not after start" in warnings[0]
    assert jobs[1].key.endswith("two.mkv#0.25-0.75") and jobs[1].name != jobs[2].name


def test_jsonl_manifest_and_errors(tree, tmp_path):
    manifest = tree / "list.jsonl"
    rows = [{"path": "one.mkv", "caption": ["first", "second"]}, {"path": "x/two.mkv", "caption": "two"},
            {"path": "one.mkv", "caption": "third"}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    jobs = collect_jobs([manifest], "", print)
    assert [j.captions for j in jobs] == [["first", "second", "third"], ["two"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,caption\na.mp4,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="`path` column"):
        collect_jobs([bad])
    media.write_text(tmp_path / "latin.jsonl", b'{"path": "caf\xe9.mp4"}\n')
    with pytest.raises(ValueError, match="latin.jsonl: manifest is not UTF-8"):
        collect_jobs([tmp_path / "latin.jsonl"])
    (tmp_path / "broken.jsonl").write_text('{"path": "a.mp4"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        collect_jobs([tmp_path / "broken.jsonl"])


def test_prepare_with_a_manifest(tree, tmp_path):
    manifest = tree / "list.csv"
    manifest.write_text("path,caption,start,end\none.mkv,first,,\none.mkv,second,,\n"
                        "x/two.mkv,window,0.2,0.8\n", encoding="utf-8")
    out = tmp_path / "cache"
    summary = prepare([manifest], out, build_base("tiny", seed=0), fps=10, size=16, progress=False)
    assert summary.used == 2 and summary.frames == 10 + 6
    info = load_cache_info(out)
    one, two = info["videos"]
    assert (two["start"], two["end"], two["frames"]) == (0.2, 0.8, 6)
    assert [info["captions"][i] for i in one["captions"]] == ["first", "second"]
    ds = ClipDataset(out, frames=5, seed=3)
    first = [i for i in range(len(ds)) if ds.locate(i)[0] == 0]
    texts = set()
    for epoch in range(6):  # the caption is drawn per item and epoch: both show up
        ds.set_epoch(epoch)
        texts |= {tuple(ds[i]["text"][1, :4].tolist()) for i in first}  # row 0 = BOS: same for all
    assert len(texts) == 2
