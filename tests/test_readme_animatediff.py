"""README.md's "Fine-tune an AnimateDiff motion module on your clips" commands, run as written on tiny models.

The section's ```bash block is read from README.md at test time (backslash-continued lines joined, `# comments`
dropped) and each command runs through `sdvideo.cli.main`, so this fails when the README's commands stop working.
Placeholders become tiny fixtures: `--base sd15/` the tiny base, `--data cache` its prepared cache, `--init-motion
mm_sd_v15_v2.ckpt` a tiny original-layout AnimateDiff .ckpt written here, and every output (`--out`, export's RUN)
a path under tmp_path. `train` commands get only what a tiny CPU run needs appended (TINY_TRAIN)."""

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from diffusers import AnimateDiffPipeline, MotionAdapter
from safetensors import safe_open
from test_animatediff_layers import tiny_adapter
from test_export_animatediff import diffusers_pipeline

from sdvideo.cli import main
from sdvideo.models.motion_module_file import to_original_names
from sdvideo.sampling.pipeline import load_video_unet
from sdvideo.sampling.sample import load_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Fine-tune an AnimateDiff motion module on your clips"
# Appended to each `train` command: 2 steps on the CPU, a checkpoint at the end; every other option is the
# README's. Its `--frames 16` stays: the tiny cache's clips (40 frames at 12 fps resampled to 6 fps: 20, 18 after
# the held-out tail) hold 16 frames, and 16 frames of 8x8 latents train in well under a second per step.
TINY_TRAIN = ["--steps", "2", "--device", "cpu", "--checkpoint-every", "2"]
PROMPT, FRAMES, STEPS, GUIDANCE, SEED = "a moving square", 3, 2, 3.0, 0


def readme_commands() -> list[list[str]]:
    """The section's ```bash block as argv lists (continuations joined, comments dropped, blank lines skipped)."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text[text.index(SECTION) + len(SECTION):]
    section = section[: m.start()] if (m := re.search(r"^## ", section, re.M)) else section
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M)
    assert block, f"README.md's section {SECTION!r} has no ```bash block"
    joined = re.sub(r"\\\n", " ", block.group(1))
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [argv for argv in commands if argv]


def tiny_argv(argv: list[str], fixtures: dict[str, Path], root: Path) -> list[str]:
    """A README command for the tiny fixtures: inputs by flag from `fixtures`, outputs under `root`."""
    assert argv[0] == "sdvideo", argv
    argv, out = argv[1:], []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in fixtures and i + 1 < len(argv):  # --data / --base / --init-motion PLACEHOLDER
            out += [token, str(fixtures[token])]
            i += 2
            continue
        if token == "--out" and i + 1 < len(argv):
            out += [token, str(root / argv[i + 1])]
            i += 2
            continue
        out.append(token)
        i += 1
    if out[0] == "export":  # export RUN: the run a train command above wrote under root
        out[1] = str(root / out[1])
    if out[0] == "train":
        out += TINY_TRAIN
    return out


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def latents(pipe: AnimateDiffPipeline) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(SEED)
    return pipe(PROMPT, num_frames=FRAMES, height=16, width=16, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                generator=generator, output_type="latent").frames


def test_readme_animatediff_commands_run_on_tiny_models(tiny_base_dir, tiny_cache, tmp_path):
    commands = readme_commands()
    assert [argv[1] for argv in commands].count("train") >= 2, commands

    # the motion module every run starts from: an original-layout AnimateDiff .ckpt (a plain dict of tensors)
    start = tiny_adapter(seed=3)
    ckpt = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save({k: v.clone().contiguous() for k, v in to_original_names(start.state_dict()).items()}, ckpt)
    start_config = tmp_path / "start-config"
    start.save_config(start_config)
    fixtures = {"--data": tiny_cache, "--base": tiny_base_dir, "--init-motion": ckpt}

    argvs = [tiny_argv(argv, fixtures, tmp_path / "out") for argv in commands]
    for argv in argvs:
        assert main(argv) == 0, argv

    # the two exports and the runs they read (written by the train commands above)
    exports = {option(argv, "--format"): argv for argv in argvs if argv[0] == "export"}
    assert exports.keys() == {"animatediff", "lora"}, exports
    trains = {option(argv, "--out"): argv for argv in argvs if argv[0] == "train"}
    run_mm, run_lora = (Path(exports[f][1]) for f in ("animatediff", "lora"))
    mm_file, lora_file = (Path(option(exports[f], "--out")) for f in ("animatediff", "lora"))
    assert "--lora-rank" not in trains[str(run_mm)] and "--lora-rank" in trains[str(run_lora)]
    for run in (run_mm, run_lora):  # the README's --frames, as written
        assert json.loads((run / "config.json").read_text())["frames"] == int(option(trains[str(run)], "--frames"))

    # the animatediff export: diffusers' MotionAdapter.from_single_file reads the run's motion modules (fp16)
    with safe_open(str(mm_file), framework="pt") as f:
        metadata = f.metadata()
    config = tmp_path / "mm-config"
    MotionAdapter.from_config(json.loads(metadata["motion_adapter_config"])).save_config(config)
    exported = MotionAdapter.from_single_file(str(mm_file), config=str(config), torch_dtype=torch.float32)
    state, run_modules = exported.state_dict(), load_video_unet(run_mm).motion_adapter_state_dict()
    assert state.keys() == run_modules.keys()
    for key, value in run_modules.items():  # (the position tables are fixed sinusoids, kept in full precision)
        assert torch.equal(state[key], value if key.endswith(".pe") else value.half().float()), key
    assert any(not torch.equal(v, start.state_dict()[k]) for k, v in run_modules.items())  # training moved them

    # the LoRA export: on the tiny base + the starting motion module (the .ckpt) it changes the output
    pipe = diffusers_pipeline(tiny_base_dir, MotionAdapter.from_single_file(str(ckpt), config=str(start_config),
                                                                             torch_dtype=torch.float32))
    without = latents(pipe)
    pipe.load_lora_weights(str(lora_file))
    with_lora = latents(pipe)
    change = (with_lora - without).abs().max()
    assert change > 1e-4 * without.abs().max(), change  # seen: 8e-4 of the latents' scale after 2 steps at 1e-4
    # ... to what sdvideo samples from the LoRA run (RUN/unet: the adapters merged), up to the fp16 file's rounding
    sdvideo_pipe = load_pipeline(run_lora, "ddim", "cpu", False)
    ours = sdvideo_pipe([PROMPT], num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE, seed=SEED,
                        output_type="latent").frames
    assert (with_lora - ours).abs().max() < 0.1 * change, ((with_lora - ours).abs().max(), change)
