"""`sdvideo sample` (text, prompts file, windows, --extend, --image) and `sdvideo interpolate` through
the CLI: the files written decode with PyAV to the expected frame count, size and fps."""

import av
import numpy as np
import pytest
import torch
from PIL import Image

from sdvideo.cli import main
from sdvideo.sampling.sample import sample
from test_sampling_pipeline import make_run

pytestmark = pytest.mark.usefixtures("one_thread")

COMMON = ["--steps", "2", "--device", "cpu"]


def decoded(path):
    """(frames, width, height, fps) of a video file, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate
    return len(frames), frames[0].shape[1], frames[0].shape[0], float(rate) if rate else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling-cli")
    return root, make_run(root, 0), make_run(root, 5)


def test_sample_prompts_file_windows_and_seeds(runs, tmp_path, capsys):
    _, run, _ = runs
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\na red car\n\na blue boat\n")
    out = tmp_path / "out"
    assert main(["sample", "--run", str(run), "--prompts-file", str(prompts), "--prompt", "a dog", "--out", str(out),
                 "--frames", "9", "--window", "4", "--overlap", "2", "--seed", "1", "2", "3",
                 "--scheduler", "dpm++", *COMMON]) == 0
    mp4s, gifs = sorted(out.glob("*.mp4")), sorted(out.glob("*.gif"))
    assert [p.stem for p in mp4s] == ["00-a-dog", "01-a-red-car", "02-a-blue-boat"] and len(gifs) == 3
    for path in mp4s:
        assert decoded(path) == (9, 16, 16, 6.0)
    assert decoded(gifs[0])[:3] == (9, 16, 16)
    grid = Image.open(out / "grid.png")
    assert grid.width >= 9 * 16 and grid.height >= 3 * 16  # one row per prompt
    assert str(out / "grid.png") in capsys.readouterr().out


def test_sample_function_is_deterministic(runs, tmp_path):
    _, run, _ = runs
    kw = dict(frames=3, steps=2, device="cpu", progress=False)
    a = sample(run, ["x", "y"], tmp_path / "a", seed=3, **kw)
    b = sample(run, ["x", "y"], tmp_path / "b", seed=3, **kw)
    assert a["videos"].shape == (2, 3, 3, 16, 16) and torch.equal(a["videos"], b["videos"])


def test_windows_shift_by_default_and_the_cli_can_fix_them(runs, tmp_path, monkeypatch):
    _, run, _ = runs
    kw = dict(frames=9, steps=2, device="cpu", progress=False, seed=1, window=4, overlap=2)
    default = sample(run, ["x"], tmp_path / "default", **kw)["videos"]
    shifted = sample(run, ["x"], tmp_path / "shifted", shift_windows=True, **kw)["videos"]
    fixed = sample(run, ["x"], tmp_path / "fixed", shift_windows=False, **kw)["videos"]
    assert default.shape == (1, 9, 3, 16, 16) and torch.equal(default, shifted) and not torch.equal(fixed, shifted)
    assert main(["sample", "--run", str(run), "--prompt", "x", "--out", str(tmp_path / "cli"), "--frames", "9",
                 "--window", "4", *COMMON]) == 0
    assert decoded(tmp_path / "cli" / "00-x.mp4") == (9, 16, 16, 6.0)
    seen = []  # what the CLI passes on: shifted unless --no-shift-windows
    monkeypatch.setattr("sdvideo.sampling.sample.sample",
                        lambda *a, **k: seen.append(k["shift_windows"]) or {"files": []})
    for flag in ([], ["--shift-windows"], ["--no-shift-windows"]):
        assert main(["sample", "--run", str(run), "--prompt", "x", "--out", str(tmp_path / "f"), "--window", "4",
                     *flag, *COMMON]) == 0
    assert seen == [True, True, False]


@pytest.mark.parametrize("conditioned", [False, True])
def test_extend_continues_a_video(runs, tmp_path, conditioned):
    root, plain, masked = runs
    source = tmp_path / "source.mp4"
    assert main(["sample", "--run", str(plain), "--prompt", "x", "--out", str(tmp_path / "src"), "--frames", "4",
                 *COMMON]) == 0
    (tmp_path / "src" / "00-x.mp4").rename(source)
    out = tmp_path / "ext"
    assert main(["sample", "--run", str(masked if conditioned else plain), "--extend", str(source),
                 "--prompt", "x", "--frames", "3", "--context-frames", "2", "--out", str(out), *COMMON]) == 0
    assert decoded(out / "00-x.mp4") == (4 + 3, 16, 16, 6.0)
    result = sample(plain, ["x"], tmp_path / "ext2", frames=2, steps=1, extend=source, device="cpu", progress=False)
    with av.open(str(source)) as container:
        original = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    # The source frames come through unchanged; the continuation follows them.
    np.testing.assert_allclose(result["videos"][0, :4].permute(0, 2, 3, 1).numpy() * 255, original, atol=1.0)


def test_image_to_video_and_bad_image(runs, tmp_path, capsys):
    _, run, _ = runs
    still = tmp_path / "still.png"
    Image.fromarray((np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)).save(still)
    out = tmp_path / "img"
    assert main(["sample", "--run", str(run), "--image", str(still), "--frames", "4", "--out", str(out), *COMMON]) == 0
    assert decoded(out / "00-video.mp4") == (4, 16, 16, 6.0)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--image", str(bad), "--out", str(out), *COMMON]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an image" in err and "notes.png" in err
    assert main(["sample", "--run", str(run), "--out", str(out), *COMMON]) == 2
    assert "--prompt" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --image and --extend exclude each other
        main(["sample", "--run", str(run), "--image", str(still), "--extend", str(still), "--out", str(out)])


def test_interpolate_raises_the_frame_rate(runs, tmp_path, capsys):
    _, plain, masked = runs
    import media

    clip = media.write_video(tmp_path / "clip.mp4", frames=4, fps=8, width=20, height=16, codec="libx264")
    for run, factor in ((plain, 2), (masked, 3)):
        out = tmp_path / f"x{factor}.mp4"
        assert main(["interpolate", str(clip), "--run", str(run), "--factor", str(factor), "--out", str(out),
                     "--window", "4", *COMMON]) == 0
        assert decoded(out) == ((4 - 1) * factor + 1, 16, 16, 8.0 * factor)
    capsys.readouterr()
    assert main(["interpolate", str(clip), "--run", str(plain), "--factor", "1", "--out", str(tmp_path), *COMMON]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--factor" in err


def test_sample_from_a_saved_pipeline_folder(runs, tmp_path):
    _, run, _ = runs
    from test_sampling_pipeline import load

    load(run).save_pretrained(tmp_path / "saved")  # model_index.json + one folder per component
    out = tmp_path / "out"
    assert main(["sample", "--run", str(tmp_path / "saved"), "--prompt", "x", "--frames", "3", "--out", str(out),
                 "--scheduler", "euler", *COMMON]) == 0
    assert decoded(out / "00-x.mp4") == (3, 16, 16, 6.0)  # training size and rate kept in the saved config


def test_sample_and_interpolate_compile_the_unet_blocks_and_give_the_same_video(runs, tmp_path, compile_calls):
    _, run, _ = runs
    compiled = compile_calls
    kw = dict(frames=3, steps=2, device="cpu", progress=False, seed=3)
    plain = sample(run, ["x"], tmp_path / "plain", **kw)
    assert not compiled
    fast = sample(run, ["x"], tmp_path / "fast", compile=True, **kw)
    assert len(compiled) == 1
    torch.testing.assert_close(fast["videos"], plain["videos"], rtol=0, atol=1e-5)
    assert main(["sample", "--run", str(run), "--prompt", "x", "--out", str(tmp_path / "cli"), "--frames", "3",
                 "--compile", *COMMON]) == 0
    assert len(compiled) == 2 and decoded(next((tmp_path / "cli").glob("*.mp4")))[0] == 3
    import media

    clip = media.write_video(tmp_path / "clip.mp4", frames=4, fps=8, width=20, height=16, codec="libx264")
    assert main(["interpolate", str(clip), "--run", str(run), "--out", str(tmp_path / "x2.mp4"), "--window", "4",
                 "--compile", *COMMON]) == 0
    assert len(compiled) == 3 and decoded(tmp_path / "x2.mp4") == (7, 16, 16, 16.0)


def test_cuda_graphs_are_asked_for_by_default_and_left_off_on_the_cpu(runs, tmp_path, monkeypatch):
    from sdvideo.sampling import sample as sample_module

    real, seen = sample_module.load_pipeline, []

    def spy(*args):
        pipe = real(*args)
        seen.append((args[5], pipe.cuda_graphs))  # (cuda_graphs asked for, the pipeline's GraphedUNet)
        return pipe

    monkeypatch.setattr(sample_module, "load_pipeline", spy)
    _, run, _ = runs
    for flags in ([], ["--no-cuda-graphs"]):
        assert main(["sample", "--run", str(run), "--prompt", "x", "--out", str(tmp_path / str(len(flags))),
                     "--frames", "2", *flags, *COMMON]) == 0
    assert seen == [(True, None), (False, None)]
