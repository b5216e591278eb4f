"""`--init-motion PATH`: AnimateDiff motion modules from a diffusers MotionAdapter folder or an original AnimateDiff
.safetensors / .ckpt load with the adapter's exact weights; files that do not fit fail in one line, loading nothing."""

import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel
from safetensors.torch import save_file

from sdvideo.models.motion_module_file import (
    MotionModuleError,
    load_motion_file,
    motion_options,
    to_original_names,
)
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adapter():
    torch.manual_seed(0)
    return MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory, adapter):
    """The adapter as a diffusers folder, and in AnimateDiff's original layout as fp16 .safetensors and .ckpt."""
    root = tmp_path_factory.mktemp("motion")
    adapter.save_pretrained(root / "folder")
    original = to_original_names(adapter.state_dict())
    save_file({k: v.half().contiguous() for k, v in original.items()}, root / "mm_fp16.safetensors")
    torch.save({k: v.clone() for k, v in original.items()}, root / "mm.ckpt")
    return root


def fresh_video():
    torch.manual_seed(1)
    return inflate(UNet2DConditionModel(**preset("tiny")["unet"]), temporal_layers="animatediff")


@pytest.mark.parametrize("name,dtype", [("folder", torch.float32), ("mm_fp16.safetensors", torch.float16),
                                        ("mm.ckpt", torch.float32)])
def test_each_form_loads_the_adapters_weights(files, adapter, name, dtype):
    assert motion_options(files / name) == dict(
        temporal_layers="animatediff", motion_num_attention_heads=8, motion_norm_num_groups=None,
        motion_max_seq_length=32, use_motion_mid_block=True, motion_transformer_layers_per_block=1,
        motion_transformer_layers_per_mid_block=1)
    video = fresh_video()
    load_motion_file(video, files / name)
    loaded, expected = video.motion_adapter_state_dict(), adapter.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():  # (the position tables are fixed sinusoids, kept in full precision)
        assert torch.equal(loaded[key], value if key.endswith(".pe") else value.to(dtype).float()), key


def test_original_layout_names_and_diffusers_reads_them_back(files, adapter):
    original = to_original_names(adapter.state_dict())
    for key in ("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight",
                "up_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.norms.1.weight",
                "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.ff_norm.bias",
                "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe",
                "down_blocks.0.motion_modules.0.temporal_transformer.proj_out.weight"):
        assert key in original, key
    back = MotionAdapter.from_single_file(str(files / "mm_fp16.safetensors"), config=str(files / "folder"),
                                          torch_dtype=torch.float32)
    for key, value in adapter.state_dict().items():
        assert torch.equal(back.state_dict()[key], value if key.endswith(".pe") else value.half().float()), key


def test_files_that_do_not_fit_fail_in_one_line_loading_nothing(tmp_path, files, adapter):
    torch.manual_seed(0)
    wider = MotionAdapter(block_out_channels=(64, 128), motion_layers_per_block=1)
    save_file(to_original_names(wider.state_dict()), tmp_path / "other_size.safetensors")
    good = (files / "mm_fp16.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (tmp_path / "corrupt.ckpt").write_bytes(b"PK\x03\x04 not a zip" * 10)
    partial = {k: v for k, v in to_original_names(adapter.state_dict()).items()
               if not (k.startswith("up_blocks.1.") and k.endswith("to_k.weight"))}
    lora = {k.replace(".to_q.weight", ".processor.to_q_lora.down.weight"): torch.zeros(4, 4)
            for k in to_original_names(adapter.state_dict()) if k.endswith("to_q.weight")}
    save_file(lora, tmp_path / "motion_lora.safetensors")
    unet = UNet2DConditionModel(**preset("tiny")["unet"]).state_dict()
    save_file({"model.diffusion_model." + k: v.contiguous() for k, v in unet.items()}, tmp_path / "sd.safetensors")
    save_file(partial, tmp_path / "partial.safetensors")
    pickled = tmp_path / "pickled"
    adapter.save_pretrained(pickled, safe_serialization=False)
    cases = {
        "other_size.safetensors": "block channels \\[64, 128\\], this base's UNet has \\[32, 64\\]",
        "truncated.safetensors": "cannot be read as a safetensors file",
        "corrupt.ckpt": "cannot be read as a PyTorch \\(weights-only\\) file",
        "motion_lora.safetensors": "a LoRA file",
        "sd.safetensors": "not an AnimateDiff motion module.*Stable Diffusion checkpoint",
        "partial.safetensors": "motion module weights do not match this model: 4 missing \\(e.g. \\['up_blocks.1",
        "pickled": "pickled diffusion_pytorch_model.bin, which is not read",
        "missing.ckpt": "no such motion module file",
    }
    video = fresh_video()
    before = {k: v.clone() for k, v in video.motion_adapter_state_dict().items()}
    for name, message in cases.items():
        with pytest.raises(MotionModuleError, match=message) as caught:
            load_motion_file(video, tmp_path / name)
        assert str(tmp_path / name) in str(caught.value) and "\n" not in str(caught.value), name
    assert all(torch.equal(v, before[k]) for k, v in video.motion_adapter_state_dict().items())
    with pytest.raises(MotionModuleError, match="--temporal-layers animatediff only"):
        load_motion_file(inflate(UNet2DConditionModel(**preset("tiny")["unet"])), files / "folder")


def test_train_options_need_animatediff_and_take_the_files_motion_options(tmp_path, files, capsys):
    from sdvideo.cli import main
    from sdvideo.training.config import TrainConfig

    common = ["train", "--data", str(tmp_path), "--base", str(tmp_path), "--out", str(tmp_path / "run"),
              "--init-motion", str(files / "mm.ckpt"), "--device", "cpu", "--dry-run"]
    assert main(common) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--init-motion" in err and "--temporal-layers animatediff" in err
    cfg = TrainConfig(data="c", base="b", out=str(tmp_path / "r"), device="cpu", init_motion=str(files / "mm.ckpt"),
                      temporal={"temporal_layers": "animatediff"}).resolved()
    assert cfg.temporal["motion_max_seq_length"] == 32 and cfg.temporal["use_motion_mid_block"] is True
    with pytest.raises(ValueError, match="motion_max_seq_length=16 \\(the file's: 32\\)"):
        TrainConfig(data="c", base="b", out=str(tmp_path / "r"), device="cpu", init_motion=str(files / "mm.ckpt"),
                    temporal={"temporal_layers": "animatediff", "motion_max_seq_length": 16}).resolved()
