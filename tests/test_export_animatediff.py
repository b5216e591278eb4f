"""`sdvideo export RUN --format animatediff` and `--format lora`: a run's motion modules as an original-layout
AnimateDiff file that diffusers' `MotionAdapter.from_single_file` reads, and a LoRA run's adapters as a MotionLoRA
that `AnimateDiffPipeline.load_lora_weights` applies at the run's scale; in diffusers' AnimateDiffPipeline both
sample the latents sdvideo's own pipeline samples from the run. Runs a format cannot hold give one line, exit 2,
and write nothing."""

import json
import shutil

import pytest
import torch
from diffusers import AnimateDiffPipeline, MotionAdapter, UNet2DConditionModel
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import safe_open
from safetensors.torch import load_file
from test_animatediff_layers import tiny_adapter
from test_export_temporal import one_line_error

from sdvideo.cli import main
from sdvideo.models.base import load_base
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.pipeline import load_video_unet
from sdvideo.sampling.sample import load_pipeline
from sdvideo.sampling.sampler import make_scheduler
from sdvideo.training.config import TrainConfig
from sdvideo.training.lora import LORA_FILE, add_temporal_lora, read_lora, save_lora
from sdvideo.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT, FRAMES, STEPS, GUIDANCE, SEED = "a moving square", 3, 2, 3.0, 0  # guided: the CFG order is compared too


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """The motion module both runs start from (--init-motion): a MotionAdapter folder, its proj_out off zero."""
    folder = tmp_path_factory.mktemp("start") / "adapter"
    tiny_adapter(seed=3).save_pretrained(folder)
    return folder


def train_run(out, cache, base, start, **kw):
    """2 steps on the motion modules from `start`, no fps embedding, no EMA, a high learning rate."""
    train(TrainConfig(data=str(cache), base=str(base), out=str(out), frames=3, batch_size=1, steps=2, device="cpu",
                      lr=5e-2, ema_decay=0.0, checkpoint_every=2, log_every=1, init_motion=str(start),
                      temporal={"temporal_layers": "animatediff", "fps_conditioning": False}, **kw), progress=False)
    return out


@pytest.fixture(scope="module")
def motion_run(tmp_path_factory, tiny_cache, tiny_base_dir, start):
    return train_run(tmp_path_factory.mktemp("mm") / "run", tiny_cache, tiny_base_dir, start)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_cache, tiny_base_dir, start):
    """A rank-4 LoRA with alpha 8 (scale 2, folded into B on export) on the motion modules of `start`."""
    return train_run(tmp_path_factory.mktemp("lora") / "run", tiny_cache, tiny_base_dir, start, lora_rank=4,
                     lora_alpha=8.0)


def sdvideo_latents(run):
    """`sdvideo sample`'s pipeline (fast paths on) on the run: (b, c, f, h, w) latents."""
    pipe = load_pipeline(run, "ddim", "cpu", False)
    return pipe([PROMPT], num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE, seed=SEED,
                output_type="latent").frames


def diffusers_pipeline(base_dir, adapter):
    """diffusers' AnimateDiffPipeline from the tiny base's components and `adapter`, with sdvideo's DDIM."""
    base = load_base(base_dir)
    pipe = AnimateDiffPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                               unet=base.unet, motion_adapter=adapter,
                               scheduler=make_scheduler("ddim", base.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_latents(pipe):
    generator = torch.Generator("cpu").manual_seed(SEED)  # randn_tensor draws what sdvideo's seed draws
    return pipe(PROMPT, num_frames=FRAMES, height=16, width=16, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                generator=generator, output_type="latent").frames


def close(a, b):
    """Equal up to float32 round-off (seen: 1e-6 of the latents' scale), relative to that scale."""
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-5 * b.abs().max(), (a - b).abs().max()


# ---------------------------------------------------------------------------------------------- animatediff
def test_the_motion_module_file_is_original_animatediff_and_samples_as_the_run(motion_run, start, tiny_base_dir,
                                                                               tmp_path, capsys):
    files = {dtype: tmp_path / f"mm-{dtype}.safetensors" for dtype in ("fp16", "fp32")}
    for dtype, file in files.items():
        assert main(["export", str(motion_run), "--format", "animatediff", "--out", str(file), "--dtype", dtype]) == 0
    assert "AnimateDiff motion module" in capsys.readouterr().out
    with safe_open(str(files["fp16"]), framework="pt") as f:
        metadata, names = f.metadata(), list(f.keys())
        dtypes = {f.get_tensor(k).dtype for k in names}
    assert dtypes == {torch.float16} and metadata["format"] == "animatediff-motion-module"
    assert "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight" \
        in names and "mid_block.motion_modules.0.temporal_transformer.proj_out.bias" in names
    assert all(n.split(".")[0] in ("down_blocks", "up_blocks", "mid_block") and ".temporal_transformer." in n
               for n in names)

    # diffusers reads it back offline (the header's MotionAdapter config as `config=`): the run's motion modules
    config = tmp_path / "config"
    MotionAdapter.from_config(json.loads(metadata["motion_adapter_config"])).save_config(config)
    run_modules = load_video_unet(motion_run).motion_adapter_state_dict()
    start_modules = MotionAdapter.from_pretrained(start).state_dict()
    adapters = {}
    for dtype, file in files.items():
        adapters[dtype] = MotionAdapter.from_single_file(str(file), config=str(config), torch_dtype=torch.float32)
        state = adapters[dtype].state_dict()
        for key, value in run_modules.items():
            expected = value if dtype == "fp32" or key.endswith(".pe") else value.half().float()
            assert torch.equal(state[key], expected), key
    assert any(not torch.equal(run_modules[k], start_modules[k]) for k in run_modules)  # training moved them

    # diffusers' AnimateDiffPipeline with the exported module samples what sdvideo samples from the run
    ours = sdvideo_latents(motion_run)
    theirs = diffusers_latents(diffusers_pipeline(tiny_base_dir, adapters["fp32"]))
    close(theirs, ours)
    from_start = diffusers_latents(diffusers_pipeline(tiny_base_dir, MotionAdapter.from_pretrained(start)))
    assert (from_start - ours).abs().max() > 1e-2  # the trained modules matter: the comparison is not vacuous


# ---------------------------------------------------------------------------------------------- lora
def test_the_motion_lora_applies_the_runs_adapters_at_the_runs_scale(lora_run, start, tiny_base_dir, tmp_path):
    files = {dtype: tmp_path / f"lora-{dtype}.safetensors" for dtype in ("fp16", "fp32")}
    for dtype, file in files.items():
        assert main(["export", str(lora_run), "--format", "lora", "--out", str(file), "--dtype", dtype]) == 0
    adapters, settings = read_lora(lora_run / LORA_FILE)
    assert settings["rank"] == 4 and settings["alpha"] == 8.0 and settings["design"] == "animatediff"
    with safe_open(str(files["fp16"]), framework="pt") as f:
        metadata, fp16 = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    assert (metadata["rank"], metadata["alpha"], metadata["starting_point"]) == ("4", "8", "adapter")
    name = "unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora_B.weight"
    assert name in fp16 and len(fp16) == len(adapters) and {t.dtype for t in fp16.values()} == {torch.float16}
    source = adapters["unet.down_blocks.0.attentions.0.temporal.transformer_blocks.0.attn1.to_q.lora_B.weight"]
    assert torch.equal(load_file(files["fp32"])[name], source * 2)  # alpha / rank = 8 / 4 folded into B
    assert torch.equal(fp16[name], (source * 2).half())

    ours = sdvideo_latents(lora_run)  # RUN/unet: the LoRA merged into the starting motion modules
    pipe = diffusers_pipeline(tiny_base_dir, MotionAdapter.from_pretrained(start))
    without = diffusers_latents(pipe)
    pipe.load_lora_weights(str(files["fp32"]))
    adapted = [n for n, m in pipe.unet.named_modules() if isinstance(m, BaseTunerLayer)]
    assert len(adapted) == len(fp16) // 2 and all(".motion_modules." in n for n in adapted)  # every adapter placed
    with_lora = diffusers_latents(pipe)
    close(with_lora, ours)
    assert (without - ours).abs().max() > 1e-2  # the adapters matter: without them the latents differ
    pipe.set_adapters(["default_0"], adapter_weights=[0.5])  # B unfolded: the scale loaders assume, 1 not 2
    assert (diffusers_latents(pipe) - ours).abs().max() > 1e-2  # the scale matters too
    pipe = diffusers_pipeline(tiny_base_dir, MotionAdapter.from_pretrained(start))
    pipe.load_lora_weights(str(files["fp16"]))  # the default file: the same up to fp16 rounding
    assert (diffusers_latents(pipe) - ours).abs().max() < 1e-2 * ours.abs().max()


# ---------------------------------------------------------------------------------------------- refusals
def fake_run(root, name, config=None, **options):
    """A run folder holding an untrained tiny VideoUNet with `options`, and `config` as its config.json."""
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"]), **options)
    run = root / name
    video.save_pretrained(run / "unet")
    (run / "config.json").write_text(json.dumps({"base": "base", "cache_fps": 6.0, "cache_size": 16, "frames": 3,
                                                 **(config or {})}))
    return run, video


def test_runs_the_formats_cannot_hold_give_one_line_and_write_nothing(motion_run, lora_run, tmp_path, capsys):
    def refused(run, format):
        out = tmp_path / f"{run.name}-{format}.safetensors"
        err = one_line_error(capsys, ["export", str(run), "--format", format, "--out", str(out)])
        assert not out.exists() and not list(tmp_path.glob("*.tmp")), err
        return err

    pseudo3d, video = fake_run(tmp_path, "pseudo3d")
    err = refused(pseudo3d, "animatediff")
    assert "pseudo3d temporal layers" in err and "cannot be written as --format animatediff" in err
    assert "use --format temporal" in err
    err = refused(pseudo3d, "lora")
    assert "trained without --lora-rank" in err and err.endswith("use --format temporal")
    # a LoRA on pseudo-3D layers
    add_temporal_lora(video, rank=2)
    save_lora(video, pseudo3d / LORA_FILE)
    err = refused(pseudo3d, "lora")
    assert "a LoRA on them has no AnimateDiff equivalent" in err and "--format temporal" in err

    task, _ = fake_run(tmp_path, "task", {"task": "interpolate"}, temporal_layers="animatediff",
                       fps_conditioning=False, condition_channels=5)
    assert "trained with --task interpolate" in refused(task, "animatediff")

    # an fps embedding at its zero start adds nothing and is dropped; a learned one is refused
    fps, video = fake_run(tmp_path, "fps", temporal_layers="animatediff")
    out = tmp_path / "fps-zero.safetensors"
    assert main(["export", str(fps), "--format", "animatediff", "--out", str(out)]) == 0
    assert not any("fps" in k for k in load_file(out))
    video.unet.time_embedding.fps_embedding.mlp[2].bias.data.fill_(0.1)
    video.save_pretrained(fps / "unet")
    err = refused(fps, "animatediff")
    assert "learned an fps embedding" in err and "--no-fps-conditioning" in err and "--format temporal" in err

    # LoRA: a run without one; a missing, a truncated lora.safetensors
    err = refused(motion_run, "lora")
    assert f"{motion_run} was trained without --lora-rank" in err and "use --format animatediff or temporal" in err
    broken = tmp_path / "broken"
    shutil.copytree(lora_run, broken, ignore=shutil.ignore_patterns("checkpoints"))
    (broken / LORA_FILE).unlink()
    assert f"{broken / LORA_FILE}: missing" in refused(broken, "lora")
    good = (lora_run / LORA_FILE).read_bytes()
    (broken / LORA_FILE).write_bytes(good[: len(good) // 2])
    err = refused(broken, "lora")
    assert f"{broken / LORA_FILE}: not a readable LoRA file" in err and "truncated" in err


def test_out_defaults_beside_the_run_and_must_be_safetensors(motion_run, tmp_path, capsys):
    err = one_line_error(capsys, ["export", str(motion_run), "--format", "animatediff", "--out",
                                  str(tmp_path / "mm.ckpt")])
    assert "a .safetensors file" in err and not (tmp_path / "mm.ckpt").exists()
    run = tmp_path / "drive"
    shutil.copytree(motion_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    assert main(["export", str(run), "--format", "animatediff"]) == 0
    assert (tmp_path / "drive-animatediff.safetensors").is_file()


def test_export_help_lists_each_format_on_one_line(capsys, monkeypatch):
    from sdvideo.choices import EXPORT_FORMATS

    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    listed = out[out.index("formats:"):].strip().splitlines()[1:]
    assert [line.split()[0] for line in listed] == list(EXPORT_FORMATS)
    assert all(len(line) <= 100 for line in listed)
