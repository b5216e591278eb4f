"""`sdvideo --help` and each subcommand's `--help` answer without loading torch, diffusers or transformers."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", [[], ["prepare"], ["train"], ["sample"], ["interpolate"], ["eval"], ["demo"]])
def test_help_loads_no_heavy_library(command) -> None:
    code = (
        "import sys\n"
        "from sdvideo.cli import main\n"
        f"try:\n    main({command + ['--help']!r})\nexcept SystemExit as done:\n    assert done.code == 0\n"
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
