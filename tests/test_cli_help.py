"""`sdvideo --help` and each subcommand's `--help` answer without loading torch, diffusers or transformers."""

import subprocess
import sys

import pytest


COMMANDS = ("prepare", "train", "sample", "interpolate", "eval", "demo", "export")


@pytest.mark.parametrize("argv", [[c, "--help"] for c in COMMANDS] + [["--help"], ["train", "--help-all"]])
def test_help_loads_no_heavy_library(argv) -> None:
    code = (
        "import sys\n"
        "from sdvideo.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as done:\n    assert done.code == 0\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers', 'accelerate') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: sdvideo" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_prepare_cli_defaults_are_the_functions_defaults() -> None:
    import inspect

    from sdvideo.cli import build_parser
    from sdvideo.data.prepare import prepare

    args = build_parser().parse_args(["prepare", "v.mp4", "--out", "c", "--base", "b"])
    defaults = {k: p.default for k, p in inspect.signature(prepare).parameters.items()}
    for name in ("fps", "size", "caption", "batch_size", "clip_frames", "workers", "shard_mb"):
        assert getattr(args, name) == defaults[name], name


def _help(capsys, monkeypatch, *argv: str) -> str:
    """`sdvideo ARGV` (a help flag) at 100 columns: its stdout."""
    from sdvideo.cli import main

    monkeypatch.setenv("COLUMNS", "100")
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 0
    return capsys.readouterr().out


def _train_flags() -> list[str]:
    """Every `sdvideo train` option generated from TrainConfig and TemporalOptions."""
    import dataclasses

    from sdvideo.options import flag_of
    from sdvideo.training.config import TemporalOptions, TrainConfig

    return [flag_of(f) for cls in (TrainConfig, TemporalOptions) for f in dataclasses.fields(cls)
            if f.metadata.get("cli", True)]


def test_train_help_fits_one_screen_and_help_all_lists_every_option(capsys, monkeypatch) -> None:
    short = _help(capsys, monkeypatch, "train", "--help")
    lines = short.rstrip("\n").splitlines()
    assert len(lines) <= 60, f"`sdvideo train --help` is {len(lines)} lines at 100 columns"
    assert max(map(len, lines)) <= 100
    full = _help(capsys, monkeypatch, "train", "--help-all")
    flags = _train_flags()
    assert len(flags) == len(set(flags)) > 40
    for flag in flags:  # every option documented, the rare ones only with --help-all
        assert flag in full, flag
    hidden = [f for f in flags if f not in short]
    assert "--ema-decay" in hidden and "--temporal-embedding" in hidden and len(hidden) >= 15
    for flag in ("--data", "--frames", "--strides", "--steps", "--lr", "--gradient-checkpointing", "--compile"):
        assert flag in short, flag
    # every checkpointing level is accepted; --help lists the common ones, --help-all all of them
    assert "light-1+3" not in short and "light-1+3" in full and "--stride " not in full
    assert "--compile-regions" not in full and "--height" not in _help(capsys, monkeypatch, "sample", "--help")


def test_train_options_come_from_the_config_fields() -> None:
    """Defaults are stated once, on TrainConfig's fields: the parsed defaults are TrainConfig's own."""
    import dataclasses

    from sdvideo.cli import build_parser, train_options
    from sdvideo.training.config import TemporalOptions, TrainConfig

    parsed = train_options(build_parser().parse_args(["train", "--data", "d", "--base", "b", "--out", "o"]))
    assert TrainConfig(**parsed) == dataclasses.replace(TrainConfig(data="d", base="b", out="o"),
                                                        temporal=dataclasses.asdict(TemporalOptions()))
    given = train_options(build_parser().parse_args([
        "train", "--data", "d", "--base", "b", "--out", "o", "--strides", "2", "--gradient-checkpointing", "light-1+3",
        "--temporal-embedding", "--no-fps-conditioning", "--sample-prompt", "a", "--sample-prompt", "b"]))
    assert given["strides"] == [2] and given["gradient_checkpointing"] == "light-1+3"
    assert given["temporal"]["temporal_embedding"] is True and given["temporal"]["fps_conditioning"] is False
    assert given["sample_prompts"] == ["a", "b"]


def test_temporal_option_defaults_are_the_video_unets() -> None:
    import dataclasses
    import inspect

    from sdvideo.models.video_unet import VideoUNet
    from sdvideo.training.config import TemporalOptions

    unet = {k: p.default for k, p in inspect.signature(VideoUNet.__init__).parameters.items()}
    for name, value in dataclasses.asdict(TemporalOptions()).items():
        assert name in unet, name  # every option is a VideoUNet argument
        if name != "temporal_embedding":  # the CLI may turn it on for new runs before the model's default does
            assert unet[name] == value, name


@pytest.mark.parametrize("argv, function", [
    (["sample", "--run", "r", "--out", "o"], "sdvideo.sampling.sample:sample"),
    (["interpolate", "v.mp4", "--run", "r", "--out", "o"], "sdvideo.sampling.sample:interpolate_video"),
    (["eval", "--run", "r", "--data", "d", "--out", "o"], "sdvideo.eval.evaluate:evaluate"),
])
def test_cli_defaults_are_the_functions_defaults(argv, function) -> None:
    """sample, interpolate and eval state their defaults on the function and the CLI: the same values."""
    import importlib
    import inspect

    from sdvideo.cli import build_parser

    module, name = function.split(":")
    signature = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    renamed = dict(decode_chunk="decode_chunk_size", condition="condition_method", clip="clip_model",
                   fvd="fvd_model", **({"fps": "input_fps"} if argv[0] == "interpolate" else {}))
    compared = 0
    for key, value in vars(build_parser().parse_args(argv)).items():
        parameter = signature.get(renamed.get(key, key))
        if parameter is None or parameter.default is inspect.Parameter.empty or key == "size":
            continue
        default = parameter.default
        if isinstance(value, list) and not isinstance(default, (list, tuple)):
            value = value[0] if len(value) == 1 else value  # --seed 0: one seed
        assert (list(value) if isinstance(value, (list, tuple)) else value) == \
            (list(default) if isinstance(default, (list, tuple)) else default), key
        compared += 1
    assert compared >= 8


def test_old_run_configs_load_and_resume_unchanged() -> None:
    """config.json of runs made before --stride merged into --strides and --compile-regions into --compile
    (and before the optimizer's auto was resolved) loads, and resuming its checkpoint changes nothing."""
    from sdvideo.training.config import TrainConfig, upgrade_config
    from sdvideo.training.resume import resume_changes

    old = dict(data="d", base="b", out="o", frames=3, stride=2, strides=None, compile=True, compile_regions="blocks",
               optimizer="auto", device="cpu", mixed_precision="no", gradient_checkpointing="none", cache_fps=10.0)
    cfg = TrainConfig.from_dict(old)
    assert (cfg.strides, cfg.compile, cfg.optimizer) == ([2], "blocks", "adamw")
    assert upgrade_config(dict(stride=1, strides=[1, 2, 4], compile=False, compile_regions="layers")) == dict(
        strides=[1, 2, 4], compile="off")
    assert upgrade_config(dict(stride=1, strides=None, compile="auto", compile_regions="auto")) == dict(
        strides=[1], compile="auto")
    state = {"config": {k: v for k, v in old.items() if k != "cache_fps"}}
    assert resume_changes(state, cfg.to_dict(), {}, "") == ({}, {})
    refused, _ = resume_changes(state, {**cfg.to_dict(), "strides": [1, 2]}, {}, "")
    assert refused == {"strides": ([2], [1, 2])}
