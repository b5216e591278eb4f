"""`VideoUNet(temporal_layers="animatediff")`: AnimateDiff motion modules computing what diffusers' `UNetMotionModel`
computes, starting as the image model, and a run with them that trains, resumes, samples and evaluates."""

import csv
import json

import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

from sdvideo.models.motion_modules import MotionModuleAfter
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import VideoUNet, inflate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet2DConditionModel(**preset("tiny")["unet"]).eval()


def inputs(batch=2, frames=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 4, frames, 8, 8, generator=g), torch.randn(batch, 77, 32, generator=g)


def frame_by_frame(unet, x, text, t=10):
    b, c, f, h, w = x.shape
    out = unet(x.transpose(1, 2).reshape(b * f, c, h, w), t, text.repeat_interleave(f, 0)).sample
    return out.reshape(b, f, c, h, w).transpose(1, 2)


def tiny_adapter(seed=0, **options):
    """A random MotionAdapter for the tiny UNet, proj_out moved off zero so the modules change the output."""
    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, **options)
    for name, p in adapter.named_parameters():
        if "proj_out" in name:
            p.data.normal_(0, 0.2)
    return adapter


@torch.no_grad()
def test_inflated_motion_modules_start_as_the_image_model(unet):
    video = inflate(unet, temporal_layers="animatediff").eval()
    x, text = inputs()
    assert torch.equal(video(x, 10, text, fps=8.0).sample, frame_by_frame(unet, x, text))
    for p in video.temporal_parameters():  # trained: time on changes the output, time off still does not
        p.data.add_(0.1 * torch.randn_like(p))
    assert not torch.allclose(video(x, 10, text).sample, frame_by_frame(unet, x, text), atol=1e-3)
    assert torch.equal(video(x, 10, text, enable_time=False).sample, frame_by_frame(unet, x, text))


@pytest.mark.parametrize("mid", [True, False], ids=["v2-v3", "v1-no-mid-block"])
@torch.no_grad()
def test_motion_adapter_weights_give_diffusers_unet_motion_model_output(unet, mid):
    adapter = tiny_adapter(use_motion_mid_block=mid, motion_max_seq_length=24 if not mid else 32)
    video = inflate(unet, temporal_layers="animatediff", use_motion_mid_block=mid,
                    motion_max_seq_length=24 if not mid else 32).eval()
    assert video.motion_adapter_config() == {k: (list(v) if isinstance(v, tuple) else v)
                                             for k, v in adapter.config.items() if not k.startswith("_")}
    video.load_motion_adapter_state_dict(adapter.state_dict())
    reference = UNetMotionModel.from_unet2d(unet, adapter).eval()
    x, text = inputs()
    ours = video(x, torch.tensor([10, 500]), text).sample
    theirs = reference(x, torch.tensor([10, 500]), text.repeat_interleave(3, 0)).sample  # text per frame
    assert (ours - theirs).abs().max() < 1e-5
    assert (ours - frame_by_frame(unet, x, text)).abs().max() > 1e-2  # the motion modules act
    # and the weights come back out under MotionAdapter's names, loadable strictly into a fresh adapter
    saved = video.motion_adapter_state_dict()
    assert "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.weight" in saved
    assert ("mid_block.motion_modules.0.proj_out.weight" in saved) == mid
    fresh = MotionAdapter.from_config(video.motion_adapter_config())
    fresh.load_state_dict(saved, strict=True)
    assert all(torch.equal(fresh.state_dict()[k], adapter.state_dict()[k]) for k in saved)


def test_parameters_state_dicts_and_design_options(unet):
    video = inflate(unet, temporal_layers="animatediff")
    modules = dict(video.temporal_modules())
    assert any(".attentions.0.temporal" in n for n in modules) and any(".resnets.0.temporal" in n for n in modules)
    summary = video.freeze_spatial().parameter_summary()
    motion = sum(v.numel() for k, v in video.motion_adapter_state_dict().items() if not k.endswith(".pe"))
    fps = sum(p.numel() for p in video.unet.time_embedding.fps_embedding.parameters())
    assert summary["temporal"] == summary["trainable"] == motion + fps
    assert summary["spatial"] == sum(p.numel() for p in unet.parameters())
    spatial = video.spatial_state_dict()  # the 2-D UNet's names and tensors, no motion weight or buffer among them
    assert spatial.keys() == unet.state_dict().keys()
    other = UNet2DConditionModel(**preset("tiny")["unet"])
    video.load_spatial_state_dict(other.state_dict())
    assert torch.equal(video.unet.down_blocks[0].attentions[0].spatial.proj_in.weight,
                       other.down_blocks[0].attentions[0].proj_in.weight)
    with pytest.raises(ValueError, match="temporal_kernel_size, temporal_embedding"):
        VideoUNet(preset("tiny")["unet"], temporal_layers="animatediff", temporal_kernel_size=1,
                  temporal_embedding=True)
    with pytest.raises(ValueError, match="does not use motion_max_seq_length"):
        VideoUNet(preset("tiny")["unet"], motion_max_seq_length=16)
    with pytest.raises(ValueError, match="temporal_layers must be one of pseudo3d, animatediff"):
        VideoUNet(preset("tiny")["unet"], temporal_layers="3d")
    with pytest.raises(ValueError, match="needs a VideoUNet with temporal_layers='animatediff'"):
        inflate(unet).motion_adapter_state_dict()
    with pytest.raises(ValueError, match="at most 32 frames"):
        video(*inputs(1, 33)[:1], 10, inputs(1)[1])


def test_checkpointing_levels_fast_forms_and_compile_regions(unet):
    video = inflate(unet, temporal_layers="animatediff", condition_channels=5).freeze_spatial()
    video.frame_conditioning.requires_grad_(True)
    for p in video.temporal_parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x, text = inputs()
    grads = {}
    for level in ("none", "temporal", "light-1", "selective", "attention", "blocks", "full"):
        video.set_gradient_checkpointing(level)
        video.zero_grad()
        video.train()(x, 10, text, fps=8.0).sample.square().mean().backward()
        grads[level] = torch.cat([p.grad.flatten() for p in video.parameters() if p.requires_grad])
    assert video.frame_context.checkpoint_temporal and video.unet.is_gradient_checkpointing  # full
    for level, g in grads.items():
        assert torch.allclose(g, grads["none"], atol=1e-6), level
    video.eval()
    pair = torch.cat([x[:1], x[:1]])
    with torch.no_grad():
        plain = video(pair, 10, text, fps=8.0).sample
        video.enable_fast_inference(devices=("cpu",))  # guidance pair, subpixel upsamplers, ...: same results
        fast = video(pair, 10, text, fps=8.0, guidance_pair=True).sample
    assert (fast - plain).abs().max() < 1e-5
    targets = video._compile_targets("layers")  # one region per motion wrapper, nothing inside it again
    wrappers = [m for m in targets if isinstance(m, MotionModuleAfter)]
    assert len(wrappers) == 2 * 1 + 2 * 2 + 1  # down blocks: layers_per_block each, up blocks: one more, mid
    inside = {id(m) for w in wrappers for m in w.modules() if m is not w}
    assert not any(id(m) in inside for m in targets)


def test_memory_estimate_traces_the_motion_modules():
    from sdvideo.training.memory_estimate import estimate_training_memory

    unet_config = preset("tiny")["unet"]
    est = {level: estimate_training_memory(dict(unet_config), dict(temporal_layers="animatediff"), 1, 4, 8,
                                           gradient_checkpointing=level) for level in ("none", "temporal", "full")}
    pseudo = estimate_training_memory(dict(unet_config), {}, 1, 4, 8)
    assert est["none"]["trainable_params"] != pseudo["trainable_params"]
    assert est["none"]["activations_gib"] > est["temporal"]["activations_gib"] > est["full"]["activations_gib"] > 0
    # compiled (`--compile`, traced in plain half precision; the motion modules' float32 position tables and LoRA's
    # float32 frozen temporal weights once broke that trace): fused casts save memory, the weights count the same
    for lora_rank in (0, 4):
        options = dict(unet_config=dict(unet_config), temporal=dict(temporal_layers="animatediff"), batch_size=1,
                       frames=4, latent_size=8, lora_rank=lora_rank)
        eager, compiled = (estimate_training_memory(**options, compiled=c) for c in (False, True))
        assert 0 < compiled["total_gib"] < eager["total_gib"] and compiled["weights_gib"] == eager["weights_gib"]


# ---------------------------------------------------------------- end to end through the CLI
def test_animatediff_run_trains_resumes_samples_interpolates_and_evaluates(tmp_path, tiny_cache, tiny_base_dir,
                                                                           capsys):
    import av

    from sdvideo.cli import main
    from sdvideo.sampling.pipeline import load_video_unet

    folder = tmp_path / "adapter"
    tiny_adapter(seed=3).save_pretrained(folder)
    common = ["train", "--data", tiny_cache, "--base", tiny_base_dir, "--frames", "3", "--batch-size", "1",
              "--lr", "1e-3", "--device", "cpu", "--checkpoint-every", "1", "--task", "mixed",
              "--temporal-layers", "animatediff", "--init-motion", folder]
    common = [str(a) for a in common]
    assert main([*common, "--out", str(tmp_path / "dry"), "--dry-run"]) == 0, capsys.readouterr().err
    dry = capsys.readouterr().out  # the motion modules' parameters and a traced memory estimate
    assert "temporal 0.48 M" in dry and "estimated peak GPU memory" in dry
    assert "most frames at batch 1" in dry and "(the motion modules take at most 32)" in dry
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "whole")]) == 0, capsys.readouterr().err
    assert "--no-fps-conditioning keeps it exportable" in capsys.readouterr().out  # said before training, not at export
    assert main([*common, "--steps", "1", "--out", str(tmp_path / "cut")]) == 0
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "cut"), "--resume"]) == 0, capsys.readouterr().err
    losses = [list(csv.reader(open(tmp_path / run / "loss.csv"))) for run in ("whole", "cut")]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    weights = [(tmp_path / run / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() for run in ("whole", "cut")]
    assert weights[0] == weights[1]
    config = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert config["temporal"]["temporal_layers"] == "animatediff" and config["temporal"]["use_motion_mid_block"]
    video = load_video_unet(tmp_path / "whole")
    assert video.animatediff and video.config.condition_channels == 5

    run, out = str(tmp_path / "whole"), tmp_path / "samples"
    assert main(["sample", "--run", run, "--prompt", "x", "--frames", "6", "--window", "4", "--overlap", "2",
                 "--out", str(out), "--steps", "2", "--device", "cpu"]) == 0, capsys.readouterr().err
    video_file = next(out.glob("*.mp4"))
    with av.open(str(video_file)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert main(["interpolate", str(video_file), "--run", run, "--factor", "2", "--out", str(tmp_path / "x2.mp4"),
                 "--window", "4", "--steps", "2", "--device", "cpu"]) == 0, capsys.readouterr().err
    with av.open(str(tmp_path / "x2.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 11
    report = tmp_path / "report"
    code = main(["eval", "--run", run, "--data", str(tiny_cache), "--out", str(report), "--samples", "1",
                 "--steps", "2", "--buckets", "2", "--clips", "2", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    losses = json.loads((report / "metrics.json").read_text())["losses"]
    assert losses["video"] != losses["independent"]  # the loaded motion modules act
