"""`sdvideo export RUN --format temporal`: a run's own layers in one fp16 safetensors file with their config, and
`sdvideo sample --run FILE --base BASE` sampling from it as from the run; bad files, another base and runs that
trained spatial weights give one line and write nothing."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sdvideo.cli import main
from sdvideo.export.temporal import FORMAT, file_bytes, is_added_name
from sdvideo.models.base import build_base
from sdvideo.models.presets import unet_config
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.sample import load_pipeline
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cache, tiny_base_dir):
    """A 2-step run with masked-frame conditioning (--task interpolate: conv_in gets extra channels); no EMA and a
    high learning rate, so that its temporal layers are off their identity start."""
    run = tmp_path_factory.mktemp("export") / "run"
    train(TrainConfig(data=str(tiny_cache), base=str(tiny_base_dir), out=str(run), frames=3, batch_size=2, steps=2,
                      device="cpu", lr=1e-2, ema_decay=0.0, checkpoint_every=2, log_every=1, task="interpolate"),
          progress=False)
    return run


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The run exported in fp16 (through the CLI) and in fp32."""
    root = tmp_path_factory.mktemp("exported")
    files = {}
    for dtype in ("fp16", "fp32"):
        files[dtype] = root / f"run-{dtype}.safetensors"
        assert main(["export", str(trained), "--out", str(files[dtype]), "--dtype", dtype]) == 0
    return files


def one_line_error(capsys, argv):
    """`sdvideo ARGV`'s exit status is 2 and its error one line (a base's loading bar from transformers may
    come before it on stderr)."""
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if f"sdvideo {argv[0]}: error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in "\n".join(lines), lines
    return errors[0]


def latents(run, base=None):
    pipe = load_pipeline(run, "ddim", "cpu", False, base=base)
    return pipe, pipe(["a moving square"], num_frames=3, num_inference_steps=2, seed=0, output_type="latent").frames


def test_the_file_holds_the_runs_added_layers_in_fp16_with_their_config(trained, exported, capsys):
    run_weights = load_file(trained / "unet" / WEIGHTS)
    added = {k for k in run_weights
             if ".temporal." in k or "fps_embedding." in k or k.startswith("frame_conditioning.")}
    with safe_open(str(exported["fp16"]), framework="pt") as f:
        metadata, names = f.metadata(), set(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    assert names == added and "frame_conditioning.proj.weight" in names and len(names) < len(run_weights) / 2
    assert all(is_added_name(k) for k in names)
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    for name, tensor in tensors.items():  # the run's weights, rounded to fp16
        assert torch.equal(tensor, run_weights[name].half()), name
    fp32 = load_file(exported["fp32"])
    assert all(torch.equal(fp32[k], run_weights[k]) for k in names)

    config = json.loads((trained / "config.json").read_text())
    assert metadata["format"] == FORMAT and metadata["format_version"] == "1" and metadata["dtype"] == "fp16"
    video = json.loads(metadata["video_unet_config"])
    assert video["condition_channels"] == 5 and video["temporal_kernel_size"] == 3
    assert video["unet_config"]["block_out_channels"] == [32, 64]
    assert json.loads(metadata["base_identity"]) == config["base_identity"]
    assert metadata["base"] == "base"  # the base's name, not the exporter's local path
    run_config = json.loads(metadata["run_config"])
    assert {k: run_config[k] for k in ("trained_fps", "cache_size", "frames", "task")} == dict(
        trained_fps=[6.0], cache_size=16, frames=3, task="interpolate")
    size = exported["fp16"].stat().st_size
    assert sum(t.numel() for t in tensors.values()) * 2 < size < (trained / "unet" / WEIGHTS).stat().st_size / 3


def test_sampling_from_the_file_and_its_base_is_sampling_from_the_run(trained, exported, tiny_base_dir, tmp_path,
                                                                      capsys):
    # the run with its added weights rounded to fp16, as the fp16 file holds them
    rounded = tmp_path / "rounded"
    shutil.copytree(trained / "unet", rounded / "unet")
    shutil.copy(trained / "config.json", rounded / "config.json")
    weights = load_file(trained / "unet" / WEIGHTS)
    save_file({k: v.half().float() if is_added_name(k) else v for k, v in weights.items()}, rounded / "unet" / WEIGHTS)

    run_pipe, from_run = latents(rounded)
    file_pipe, from_file = latents(exported["fp16"], base=tiny_base_dir)
    torch.testing.assert_close(from_file, from_run, rtol=0, atol=1e-5)
    assert dict(file_pipe.config) == dict(run_pipe.config)  # fps, size, frames and noise default as the run's
    assert file_pipe.unet.config.condition_channels == 5
    _, exact = latents(exported["fp32"], base=tiny_base_dir)
    torch.testing.assert_close(exact, latents(trained)[1], rtol=0, atol=1e-5)
    assert not torch.equal(exact, from_file)  # the fp16 rounding is seen (the comparison above is not vacuous)

    # through the CLI; --run FILE alone names the base it needs
    out = tmp_path / "out"
    assert main(["sample", "--run", str(exported["fp16"]), "--base", str(tiny_base_dir), "--prompt", "x",
                 "--frames", "3", "--steps", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert (out / "00-x.mp4").is_file() and (out / "grid.png").is_file()
    err = one_line_error(capsys, ["sample", "--run", str(exported["fp16"]), "--prompt", "x", "--device", "cpu",
                                  "--out", str(tmp_path / "none")])
    assert str(exported["fp16"]) in err and "--base" in err and "(base)" in err
    assert not (tmp_path / "none").exists()


def test_bad_files_and_other_bases_give_one_line_and_write_nothing(exported, tiny_base_dir, tmp_path, capsys):
    good = exported["fp16"]

    def refused(path, base=tiny_base_dir):
        out = tmp_path / "never"
        err = one_line_error(capsys, ["sample", "--run", str(path), "--base", str(base), "--prompt", "x",
                                      "--steps", "1", "--frames", "2", "--device", "cpu", "--out", str(out)])
        assert str(path) in err and not out.exists()
        return err

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in refused(truncated)

    # another base of the same size: refused by the identity the run recorded
    other = tmp_path / "other-base"
    build_base("tiny", seed=1).save(other)
    err = refused(good, other)
    assert f"{other} is not the base model {good} was trained on" in err and "differs" in err

    # layers for another UNet size (a run on a base with block channels [64, 64])
    wide = build_base("tiny", seed=0, overrides={"unet": {"block_out_channels": [64, 64]}})
    run = tmp_path / "wide-run"
    inflate(wide.unet).save_pretrained(run / "unet")
    (run / "config.json").write_text(json.dumps({"base": "wide-base", "cache_fps": 6.0, "cache_size": 16, "frames": 3}))
    wide_file = tmp_path / "wide.safetensors"
    assert main(["export", str(run), "--out", str(wide_file)]) == 0
    err = refused(wide_file)
    assert f"holds temporal layers for a UNet with block channels [64, 64]; {tiny_base_dir} has [32, 64]" in err

    # a parameter missing, and a file that is not sdvideo's
    with safe_open(str(good), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    dropped = sorted(tensors)[-1]
    save_file({k: v for k, v in tensors.items() if k != dropped}, tmp_path / "less.safetensors", metadata=metadata)
    assert f"1 of the model's temporal parameters missing (e.g. {dropped})" in refused(tmp_path / "less.safetensors")
    save_file({"down_blocks.0.motion_modules.0.proj.weight": torch.zeros(2)}, tmp_path / "motion.safetensors")
    assert "not an sdvideo temporal-layers file (it holds an AnimateDiff motion module)" in \
        refused(tmp_path / "motion.safetensors")

    # a pickle under the name: read as safetensors only, refused, its payload never run
    from test_no_unpickling import plant

    marker = tmp_path / "PAYLOAD-RAN"
    assert "not a readable safetensors file" in refused(plant(tmp_path / "pickled.safetensors", marker))
    assert not marker.exists()


def test_export_refuses_runs_with_spatial_weights_and_bad_outputs(trained, tmp_path, capsys):
    for mode in ("all", "temporal+conv_in"):
        run = tmp_path / mode
        shutil.copytree(trained / "unet", run / "unet")
        config = json.loads((trained / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "train": mode}))
        out = tmp_path / f"{mode}.safetensors"
        err = one_line_error(capsys, ["export", str(run), "--out", str(out)])
        assert f"{run} trained weights of the base UNet too (--train {mode})" in err and "run folder" in err
        assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    err = one_line_error(capsys, ["export", str(trained), "--out", str(tmp_path / "x.pt")])
    assert ".safetensors" in err and not (tmp_path / "x.pt").exists()
    err = one_line_error(capsys, ["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.safetensors")])
    assert "not a training run" in err


def test_at_the_sd15_size_the_fp16_file_is_under_half_a_gigabyte():
    """Counted on the meta device: the temporal layers of SD 1.5 (234.6 M parameters) in fp16."""
    size = file_bytes(unet_config("sd15"))
    assert size == 469_113_600 and file_bytes(unet_config("sd15"), "fp32") == 2 * size
    assert file_bytes(unet_config("sd15"), condition_channels=5) - size == 2 * 5 * 320 * 9  # --task's conv_in


def test_export_cli_defaults_are_the_functions_defaults():
    import inspect

    from sdvideo.cli import build_parser
    from sdvideo.export import export_run

    args = build_parser().parse_args(["export", "run", "--out", "x.safetensors"])
    defaults = {k: p.default for k, p in inspect.signature(export_run).parameters.items()}
    assert (args.format, args.dtype) == (defaults["format"], defaults["dtype"]) == ("temporal", "fp16")
