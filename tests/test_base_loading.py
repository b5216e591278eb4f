"""Loading a local Stable Diffusion base (diffusers folder or original single file), offline."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from sdvideo.models.base import BaseModel, BaseModelError, build_base, load_base
from sdvideo.models.ldm_checkpoint import diffusers_to_ldm, infer_configs, save_ldm_checkpoint
from sdvideo.models.presets import preset
from sdvideo.models.tokenizer import bytes_to_unicode, char_level_clip_tokenizer, clip_bpe_tokenizer

# An SD 2.x-style tiny base: linear projections, 64-dim heads, OpenCLIP-style (gelu) text encoder.
SD2_TINY = {
    "unet": {"block_out_channels": (64, 128), "use_linear_projection": True,
             "attention_head_dim": (1, 2), "cross_attention_dim": 64},
    "vae": {"scaling_factor": 0.5},
    "text_encoder": {"hidden_size": 64, "num_attention_heads": 1, "hidden_act": "gelu"},
}
STYLES = {"sd1": {}, "sd2": SD2_TINY}


@pytest.fixture(scope="module")
def tiny() -> BaseModel:
    return build_base("tiny")


def assert_same_weights(a: BaseModel, b: BaseModel) -> None:
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys(), name
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def unet_out(base: BaseModel) -> torch.Tensor:
    """(2, 4, 8, 8) UNet output on a fixed random input."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    context = torch.randn(2, 77, base.unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        return base.unet(x, torch.tensor([10, 900]), context).sample


def assert_one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(BaseModelError) as info:
        load_base(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_diffusers_folder_round_trip(tiny: BaseModel, tmp_path: Path) -> None:
    tiny.save(tmp_path / "sd")
    index = json.loads((tmp_path / "sd" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert list((tmp_path / "sd" / "unet").glob("*.safetensors"))
    loaded = load_base(tmp_path / "sd")
    assert_same_weights(tiny, loaded)
    assert torch.equal(unet_out(tiny), unet_out(loaded))
    drop = lambda cfg: {k: v for k, v in dict(cfg).items() if not k.startswith("_")}  # noqa: E731
    assert drop(loaded.scheduler.config) == drop(tiny.scheduler.config)
    prompts = ["a cat on a mat", "Hello, World!"]
    assert loaded.tokenizer(prompts).input_ids == tiny.tokenizer(prompts).input_ids
    assert loaded.identity() == tiny.identity() and loaded.source == str(tmp_path / "sd")


def test_fp16_variant_folder(tiny: BaseModel, tmp_path: Path) -> None:
    half = copy.copy(tiny)
    half.unet, half.vae, half.text_encoder = (copy.deepcopy(m).half() for m in (tiny.unet, tiny.vae, tiny.text_encoder))
    half.save(tmp_path / "sd")
    for weights in (tmp_path / "sd").glob("*/*.safetensors"):  # what a `variant="fp16"` download holds
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    loaded = load_base(tmp_path / "sd")
    assert loaded.unet.dtype == torch.float32 and loaded.identity() == tiny.identity()
    assert load_base(tmp_path / "sd", dtype=torch.float16).text_encoder.dtype == torch.float16


@pytest.mark.parametrize("ext", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("style", ["sd1", "sd2"])
def test_single_file_round_trip(style: str, ext: str, tmp_path: Path) -> None:
    base = build_base("tiny", seed=1, overrides=STYLES[style])
    path = save_ldm_checkpoint(base, tmp_path / f"model{ext}")
    state = diffusers_to_ldm(base)
    assert any(k.startswith("cond_stage_model.model." if style == "sd2" else "cond_stage_model.transformer.")
               for k in state)
    loaded = load_base(path)
    assert_same_weights(base, loaded)
    assert torch.equal(unet_out(base), unet_out(loaded))
    assert torch.equal(base.encode_text(["a red car"]), loaded.encode_text(["a red car"]))
    assert loaded.unet.config.use_linear_projection == (style == "sd2")
    assert loaded.identity() == base.identity() and loaded.prediction_type == "epsilon"


def test_v_prediction_yaml_and_argument(tmp_path: Path) -> None:
    path = save_ldm_checkpoint(build_base("tiny", overrides=SD2_TINY), tmp_path / "v2.ckpt")
    assert load_base(path).prediction_type == "epsilon"
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert load_base(path).prediction_type == "v_prediction"
    assert load_base(path, prediction_type="epsilon").prediction_type == "epsilon"
    assert load_base(path).scheduler.config.beta_schedule == "scaled_linear"


def test_head_counts_from_overrides_and_yaml(tmp_path: Path) -> None:
    base = build_base("tiny", overrides={"unet": {"attention_head_dim": 4},
                                         "text_encoder": {"num_attention_heads": 2}})
    path = save_ldm_checkpoint(base, tmp_path / "heads.safetensors")
    guessed = load_base(path)  # the rules give 8 UNet heads and 4 text heads: same weights, other outputs
    assert_same_weights(base, guessed)
    assert not torch.equal(unet_out(base), unet_out(guessed))
    fixed = load_base(path, unet_overrides={"attention_head_dim": 4},
                      text_encoder_overrides={"num_attention_heads": 2})
    assert torch.equal(unet_out(base), unet_out(fixed))
    assert torch.equal(base.encode_text(["x"]), fixed.encode_text(["x"]))
    path.with_suffix(".yaml").write_text("model:\n  params:\n    unet_config:\n      params:\n        num_heads: 4\n")
    assert torch.equal(unet_out(base), unet_out(load_base(path)))


@pytest.mark.parametrize("name", ["sd15", "sd21"])
def test_real_sizes_are_inferred(name: str) -> None:
    with torch.device("meta"):
        base = build_base(name)
    hints = {"parameterization": "v"} if name == "sd21" else {}
    inferred = infer_configs(diffusers_to_ldm(base), hints)
    for section in ("unet", "vae", "text_encoder"):
        for key, value in preset(name)[section].items():
            assert inferred[section][key] == (list(value) if isinstance(value, tuple) else value), (section, key)


def test_sd15_unet_size() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel(**preset("sd15")["unet"])
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964


def test_encode_text(tiny: BaseModel) -> None:
    emb = tiny.encode_text(["a cat", "a dog", "a cat"])
    assert emb.shape == (3, 77, 32) and not emb.requires_grad
    # Same caption, same embedding (to float rounding: batched CPU kernels may differ by one ulp per row).
    torch.testing.assert_close(emb[0], emb[2], rtol=0, atol=1e-6)
    assert not torch.allclose(emb[0], emb[1], atol=1e-3)


def test_tokenizers() -> None:
    assert len(set(bytes_to_unicode().values())) == 256
    tok = char_level_clip_tokenizer()
    assert len(tok) == 514 and tok.model_max_length == 77
    assert tok(["a cat"]).input_ids == [[512, 320, 66, 64, 339, 513]]


def test_identity_tells_bases_apart(tiny: BaseModel) -> None:
    ident = tiny.identity()
    assert json.loads(json.dumps(ident)) == ident
    assert build_base("tiny", seed=5).identity()["vae"]["fingerprint"] != ident["vae"]["fingerprint"]
    half = copy.copy(tiny)
    half.vae = copy.deepcopy(tiny.vae).half()
    assert half.identity()["vae"] == ident["vae"]  # fp16 copy of the same weights: same base


def test_clip_bpe_tokenizer_from_a_merges_file(tmp_path: Path) -> None:
    # A merges file in OpenAI CLIP's format (version line, then one merge per line), 3 merges.
    with gzip.open(tmp_path / "bpe.txt.gz", "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\nc a\nca t</w>\np h\n")
    tok = clip_bpe_tokenizer(bpe_file=tmp_path / "bpe.txt.gz")
    assert len(tok) == 512 + 3 + 2  # bytes, bytes</w>, one token per merge, BOS, EOS
    assert tok.convert_ids_to_tokens([512, 513, 514]) == ["ca", "cat</w>", "ph"]
    # "a cat": BOS, "a</w>", the merged "cat</w>", EOS (ids after the merges: BOS 515, EOS 516).
    assert tok(["a cat"]).input_ids == [[515, 320, 513, 516]]


def test_tokenizer_lookup_for_a_file(tiny: BaseModel, tmp_path: Path) -> None:
    odd = build_base("tiny", overrides={"text_encoder": {"vocab_size": 600}})
    path = save_ldm_checkpoint(odd, tmp_path / "odd" / "m.safetensors")
    assert "--tokenizer" in assert_one_line_error(path)
    tiny.tokenizer.save_pretrained(str(tmp_path / "tok"))
    assert len(load_base(path, tokenizer=tmp_path / "tok").tokenizer) == 514
    tiny.tokenizer.save_pretrained(str(tmp_path / "odd" / "tokenizer"))
    assert len(load_base(path).tokenizer) == 514


def _zero_byte(tmp: Path) -> Path:
    (tmp / "empty.ckpt").write_bytes(b"")
    return tmp / "empty.ckpt"


def _text_file(tmp: Path) -> Path:
    (tmp / "notes.safetensors").write_text("these are not weights\n" * 10)
    return tmp / "notes.safetensors"


def _unrelated(tmp: Path) -> Path:
    save_file({"encoder.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)}, str(tmp / "clf.safetensors"))
    return tmp / "clf.safetensors"


def _no_vae(tmp: Path) -> Path:
    build_base("tiny").save(tmp / "sd")
    for f in (tmp / "sd" / "vae").iterdir():
        f.unlink()
    (tmp / "sd" / "vae").rmdir()
    return tmp / "sd"


def _inpainting_folder(tmp: Path) -> Path:
    return build_base("tiny", overrides={"unet": {"in_channels": 9}}).save(tmp / "inpaint")


def _inpainting_file(tmp: Path) -> Path:
    return save_ldm_checkpoint(build_base("tiny", overrides={"unet": {"in_channels": 9}}), tmp / "inp.ckpt")


def _context_mismatch(tmp: Path) -> Path:
    return build_base("tiny", overrides={"unet": {"cross_attention_dim": 48}}).save(tmp / "mismatch")


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing.ckpt", _zero_byte, _text_file, _unrelated, _no_vae,
                                  _inpainting_folder, _inpainting_file, _context_mismatch],
                         ids=["missing", "zero-byte", "text", "unrelated", "no-vae", "inpaint-folder",
                              "inpaint-file", "context-mismatch"])
def test_errors_are_one_line_and_name_the_path(make, tmp_path: Path) -> None:
    assert_one_line_error(make(tmp_path))
