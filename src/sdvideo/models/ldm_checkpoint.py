"""Single-file original (CompVis/LDM) Stable Diffusion checkpoints, both directions, offline.

An original checkpoint is one flat state dict: `model.diffusion_model.*` (UNet),
`first_stage_model.*` (VAE) and either `cond_stage_model.transformer.*` (SD 1.x: Hugging Face
CLIP ViT-L/14 names) or `cond_stage_model.model.*` (SD 2.x: OpenCLIP ViT-H/14 names). It says
nothing about the architecture, so `infer_configs` reads it from key names and tensor shapes; the
weights are then renamed by diffusers' own converters (`diffusers.loaders.single_file_utils`,
which never touch the hub) and loaded strictly. `save_ldm_checkpoint` writes the reverse mapping.

Attention head counts leave no trace in the weights. The rules (first that applies):
- UNet: `unet_overrides["attention_head_dim"]`; a `.yaml` of the same stem beside the checkpoint
  (`num_head_channels` -> channels // it per block, else `num_heads`); linear `proj_in`
  (SD 2.x) with every block's channels a multiple of 64 -> 64-dim heads (channels // 64 per block,
  SD 2.x's `(5, 10, 20, 20)`); otherwise 8 heads (SD 1.x's `attention_head_dim=8`).
- Text encoder: `text_encoder_overrides["num_attention_heads"]`; 64-dim heads (width // 64: 12 for
  ViT-L, 16 for ViT-H) when the width is a multiple of 64; otherwise 8-dim heads (the tiny preset).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from transformers import CLIPTextModel

from sdvideo.models.base import (
    BaseModel,
    BaseModelError,
    builtin_tokenizer,
    check_sd_family,
    load_tokenizer,
    one_line,
    sd_scheduler,
    text_config,
)
from sdvideo.models.tensor_file import read_tensor_file

UNET, VAE = "model.diffusion_model.", "first_stage_model."
CLIP, OPENCLIP = "cond_stage_model.transformer.", "cond_stage_model.model."
DEFAULT_SCALE = 0.18215
Tensors = dict[str, torch.Tensor]


def read_checkpoint(path: str | Path) -> Tensors:
    """The flat tensor state dict of a `.ckpt`/`.pt`/`.pth` (torch, weights only) or `.safetensors`."""
    return read_tensor_file(path, "expected an SD .ckpt or .safetensors checkpoint", BaseModelError)


def read_sidecar_yaml(path: str | Path) -> dict[str, Any]:
    """Hints from an LDM `.yaml` of the same stem beside the checkpoint.

    Returns the first `parameterization` ("v" for SD 2.x 768), `num_heads`, `num_head_channels`
    and `scale_factor` found anywhere in it; {} when there is no such file.
    """
    path = Path(path)
    found = [p for p in (path.with_suffix(".yaml"), path.with_suffix(".yml")) if p.is_file()]
    if not found:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(found[0].read_text())
    except Exception as exc:  # noqa: BLE001
        raise BaseModelError(f"{found[0]}: cannot be parsed as YAML ({one_line(exc)})") from exc
    hints: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("parameterization", "num_heads", "num_head_channels", "scale_factor"):
                    hints.setdefault(key, value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return hints


def _strip(state: Tensors, prefix: str) -> Tensors:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _indices(keys: Any, prefix: str) -> list[int]:
    """Sorted distinct integers that follow `prefix` in the keys (`input_blocks.` -> 0, 1, ...)."""
    return sorted({int(k[len(prefix):].split(".")[0]) for k in keys if k.startswith(prefix)})


def _single(values: set[int], what: str) -> int:
    if len(values) != 1:
        raise ValueError(f"{what} {sorted(values)} differ between blocks")
    return values.pop()


def _unet_config(u: Tensors, hints: dict[str, Any]) -> dict[str, Any]:
    conv_in, levels = u["input_blocks.0.0.weight"], [[]]
    for i in _indices(u, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in u:
            levels.append([])
        else:
            levels[-1].append(i)
    per_level = {len(level) for level in levels}
    if len(per_level) != 1 or 0 in per_level:
        raise ValueError(f"levels with {sorted(per_level)} blocks in input_blocks")
    channels = [u[f"input_blocks.{level[0]}.0.out_layers.3.weight"].shape[0] for level in levels]
    attn = [f"input_blocks.{level[0]}.1.proj_in.weight" in u for level in levels]
    spatial = [f"input_blocks.{level[0]}.1" for level, a in zip(levels, attn, strict=True) if a] + ["middle_block.1"]
    depths = {len(_indices(u, f"{t}.transformer_blocks.")) for t in spatial}
    linear = u["middle_block.1.proj_in.weight"].ndim == 2
    if int(hints.get("num_head_channels", -1)) > 0:
        heads: Any = [c // int(hints["num_head_channels"]) for c in channels]
    elif int(hints.get("num_heads", -1)) > 0:
        heads = int(hints["num_heads"])
    elif linear and all(c % 64 == 0 for c in channels):
        heads = [c // 64 for c in channels]
    else:
        heads = 8
    return dict(
        in_channels=conv_in.shape[1],
        out_channels=u["out.2.weight"].shape[0],
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        block_out_channels=channels,
        layers_per_block=len(levels[0]),
        cross_attention_dim=u["middle_block.1.transformer_blocks.0.attn2.to_k.weight"].shape[1],
        attention_head_dim=heads,
        use_linear_projection=linear,
        transformer_layers_per_block=_single(depths, "transformer depths"),
        norm_num_groups=32,
    )


def _vae_config(v: Tensors, scale: float) -> dict[str, Any]:
    levels = _indices(v, "encoder.down.")
    return dict(
        in_channels=v["encoder.conv_in.weight"].shape[1],
        out_channels=v["decoder.conv_out.weight"].shape[0],
        down_block_types=["DownEncoderBlock2D"] * len(levels),
        up_block_types=["UpDecoderBlock2D"] * len(levels),
        block_out_channels=[v[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in levels],
        layers_per_block=len(_indices(v, "encoder.down.0.block.")),
        latent_channels=v["decoder.conv_in.weight"].shape[1],
        norm_num_groups=32,
        scaling_factor=scale,
    )


def _text_encoder_config(state: Tensors) -> dict[str, Any]:
    if any(k.startswith(OPENCLIP) for k in state):  # SD 2.x: penultimate layer of OpenCLIP
        o = _strip(state, OPENCLIP)
        vocab, width = o["token_embedding.weight"].shape
        layers = len(_indices(o, "transformer.resblocks.")) - 1  # the last one is unused
        positions, act = o["positional_embedding"].shape[0], "gelu"
        inter = o["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        proj = o["text_projection"].shape[1] if "text_projection" in o else width
    else:
        t = {k.removeprefix("text_model."): v for k, v in _strip(state, CLIP).items()}
        vocab, width = t["embeddings.token_embedding.weight"].shape
        layers = len(_indices(t, "encoder.layers."))
        positions, act = t["embeddings.position_embedding.weight"].shape[0], "quick_gelu"
        inter, proj = t["encoder.layers.0.mlp.fc1.weight"].shape[0], width
    heads = width // 64 if width % 64 == 0 else max(1, width // 8)
    return dict(vocab_size=vocab, hidden_size=width, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, max_position_embeddings=positions, hidden_act=act,
                projection_dim=proj)


def infer_configs(
    state: Tensors, hints: dict[str, Any] | None = None, where: str = "checkpoint"
) -> dict[str, dict[str, Any]]:
    """Diffusers configs {"unet", "vae", "text_encoder"} of an original SD state dict.

    hints: `read_sidecar_yaml`'s. A `scale_factor` tensor in the state dict (LDM's scale_by_std
    buffer) beats the yaml's; default 0.18215. Head counts: see the module docstring.
    """
    hints = hints or {}
    expected = "expected an original SD 1.x/2.x checkpoint"
    for prefix, what in ((UNET, "UNet"), (VAE, "VAE")):
        if not any(k.startswith(prefix) for k in state):
            raise BaseModelError(f"{where}: no {prefix}* ({what}) weights; {expected}")
    if not any(k.startswith((CLIP, OPENCLIP)) for k in state):
        raise BaseModelError(f"{where}: no {CLIP}* or {OPENCLIP}* (text encoder) weights; {expected}")
    scale = float(state["scale_factor"] if "scale_factor" in state else hints.get("scale_factor", DEFAULT_SCALE))
    scale = float(f"{scale:.7g}")  # a float32 buffer's 0.18215 reads 0.1821500062942505
    try:
        configs = dict(
            unet=_unet_config(_strip(state, UNET), hints),
            vae=_vae_config(_strip(state, VAE), scale),
            text_encoder=_text_encoder_config(state),
        )
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise BaseModelError(f"{where}: weights do not have SD 1.x/2.x's layout ({one_line(exc)})") from exc
    v_pred = hints.get("parameterization") == "v"
    image = 768 if v_pred and configs["unet"]["use_linear_projection"] else 512
    configs["vae"]["sample_size"] = image
    configs["unet"]["sample_size"] = image // 2 ** (len(configs["vae"]["block_out_channels"]) - 1)
    return configs


def _assign(module: torch.nn.Module, state: Tensors, where: str, what: str) -> None:
    """Load `state` into a meta-initialised module strictly, as contiguous float32 tensors."""
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and expected[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        groups = (("missing", missing), ("unexpected", unexpected), ("of wrong shape", wrong))
        parts = "; ".join(f"{len(keys)} {label} (e.g. {keys[0]})" for label, keys in groups if keys)
        raise BaseModelError(f"{where}: {what} weights do not fit the inferred architecture: {parts}")
    state = {k: v.to(torch.float32).contiguous() for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=True)
    module.eval()


def _convert_text_encoder(state: Tensors, width: int, layers: int) -> Tensors:
    """Text encoder weights under diffusers/transformers `text_model.*` names."""
    if not any(k.startswith(OPENCLIP) for k in state):
        converted = convert_ldm_clip_checkpoint({k: v for k, v in state.items() if k.startswith(CLIP)})
        return {k: v for k, v in converted.items() if not k.endswith("position_ids")}
    unused = tuple(OPENCLIP + k for k in (f"transformer.resblocks.{layers}.", "text_projection", "logit_scale"))
    kept = {k: v for k, v in state.items() if k.startswith(OPENCLIP) and not k.startswith(unused)}
    model = SimpleNamespace(config=SimpleNamespace(hidden_size=width))  # all the converter reads
    return convert_open_clip_checkpoint(model, kept, prefix=OPENCLIP)


def load_ldm_checkpoint(
    path: str | Path,
    *,
    tokenizer: str | Path | None = None,
    prediction_type: str | None = None,
    unet_overrides: dict[str, Any] | None = None,
    text_encoder_overrides: dict[str, Any] | None = None,
) -> BaseModel:
    """A `BaseModel` (float32, CPU) from one original SD checkpoint file; see `base.load_base`."""
    path, where = Path(path), str(path)
    state, hints = read_checkpoint(path), read_sidecar_yaml(path)
    configs = infer_configs(state, hints, where)
    configs["unet"].update(unet_overrides or {})
    configs["text_encoder"].update(text_encoder_overrides or {})
    text_cfg = text_config(configs["text_encoder"])
    check_sd_family(configs["unet"], text_cfg.hidden_size, configs["vae"]["latent_channels"], where)
    try:
        with init_empty_weights():
            unet, vae = UNet2DConditionModel(**configs["unet"]), AutoencoderKL(**configs["vae"])
            text_encoder = CLIPTextModel(text_cfg)
    except Exception as exc:  # noqa: BLE001 - e.g. overrides that do not fit the blocks
        raise BaseModelError(f"{where}: cannot build the inferred architecture ({one_line(exc)})") from exc
    try:
        unet_state = convert_ldm_unet_checkpoint(state, configs["unet"])
        vae_state = convert_ldm_vae_checkpoint(state, configs["vae"])
        text_state = _convert_text_encoder(state, text_cfg.hidden_size, text_cfg.num_hidden_layers)
    except Exception as exc:  # noqa: BLE001 - a converter's KeyError etc. becomes one line
        raise BaseModelError(f"{where}: cannot map the weights to diffusers names ({one_line(exc)})") from exc
    if not hasattr(text_encoder, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        text_state = {k.removeprefix("text_model."): v for k, v in text_state.items()}
    _assign(unet, unet_state, where, "UNet")
    _assign(vae, vae_state, where, "VAE")
    _assign(text_encoder, text_state, where, "text encoder")
    if tokenizer is not None:
        tok = load_tokenizer(Path(tokenizer), where)
    elif (path.parent / "tokenizer").is_dir():
        tok = load_tokenizer(path.parent / "tokenizer", where)
    else:
        tok = builtin_tokenizer(text_cfg.vocab_size)
    if tok is None:
        raise BaseModelError(f"{where}: a checkpoint file carries no tokenizer, none is in a tokenizer/ folder "
                             "beside it and none fits its vocabulary; pass --tokenizer FOLDER")
    pred = prediction_type or ("v_prediction" if hints.get("parameterization") == "v" else "epsilon")
    return BaseModel(unet, vae, text_encoder, tok, sd_scheduler(pred), source=where)


# ---- diffusers -> original names (the reverse of the converters above) ----
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_CLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
               "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def _rename_first(rest: str, table: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{table.get(head, head)}.{tail}"


def _unet_key(key: str, n: int, up_attn: list[bool]) -> str:
    """diffusers UNet key -> LDM key; n = layers_per_block + 1 (LDM blocks per level)."""
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        side, b, part, j, rest = m[1], int(m[2]), m[3], int(m[4]), m[5]
        index = 1 + b * n + j if side == "down" else b * n + j
        rest = _rename_first(rest, _RESNET) if part == "resnets" else rest
        blocks = "input_blocks" if side == "down" else "output_blocks"
        return f"{blocks}.{index}.{int(part != 'resnets')}.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * n + n - 1}.0.op.{m[2]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        b = int(m[1])
        return f"output_blocks.{b * n + n - 1}.{2 if up_attn[b] else 1}.conv.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_rename_first(m[2], _RESNET)}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    head, _, param = key.rpartition(".")
    if head in _UNET_TOP:
        return f"{_UNET_TOP[head]}.{param}"
    raise KeyError(f"UNet parameter {key} has no original SD name")


def _vae_key(key: str, levels: int) -> str:
    """diffusers AutoencoderKL key -> LDM key (the decoder's levels are numbered bottom-up there)."""
    key = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.{f'block.{m[3]}' if m[2] == 'resnets' else 'downsample'}.{m[4]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.+)", key):
        level = levels - 1 - int(m[1])
        return f"decoder.up.{level}.{f'block.{m[3]}' if m[2] == 'resnets' else 'upsample'}.{m[4]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        return f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
    return key


def diffusers_to_ldm(base: BaseModel, style: str | None = None) -> Tensors:
    """The original single-file state dict of a base. style: "sd1" (HF CLIP names under
    `cond_stage_model.transformer.`) or "sd2" (OpenCLIP names under `cond_stage_model.model.`,
    plus an unused final layer and a zero text_projection); default: "sd2" if the text encoder's
    hidden_act is "gelu" (OpenCLIP) else "sd1". Works on meta tensors too."""
    style = style or ("sd2" if base.text_encoder.config.hidden_act == "gelu" else "sd1")
    unet_cfg, levels = base.unet.config, len(base.vae.config.block_out_channels)
    up_attn = [t.startswith("CrossAttn") for t in unet_cfg.up_block_types]
    out: Tensors = {UNET + _unet_key(k, unet_cfg.layers_per_block + 1, up_attn): v
                    for k, v in base.unet.state_dict().items()}
    for key, value in base.vae.state_dict().items():
        linear_attn = ".mid_block.attentions." in key and value.ndim == 2  # 1x1 convs in LDM
        out[VAE + _vae_key(key, levels)] = value[..., None, None] if linear_attn else value
    text = {k.removeprefix("text_model."): v for k, v in base.text_encoder.state_dict().items()
            if not k.endswith("position_ids")}
    if style == "sd1":
        out.update({f"{CLIP}text_model.{k}": v for k, v in text.items()})
    else:
        fixed = {"embeddings.token_embedding.weight": "token_embedding.weight",
                 "embeddings.position_embedding.weight": "positional_embedding",
                 "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias"}
        layers = base.text_encoder.config.num_hidden_layers
        for i in range(layers):
            p = f"encoder.layers.{i}."
            for param in ("weight", "bias"):
                qkv = [text.pop(f"{p}self_attn.{x}_proj.{param}") for x in "qkv"]
                out[f"{OPENCLIP}transformer.resblocks.{i}.attn.in_proj_{param}"] = torch.cat(qkv)
            for key in [k for k in text if k.startswith(p)]:
                name = _openclip_layer_name(key[len(p):])
                out[f"{OPENCLIP}transformer.resblocks.{i}.{name}"] = text.pop(key)
        for key in list(text):
            out[OPENCLIP + fixed[key]] = text.pop(key)
        last = f"{OPENCLIP}transformer.resblocks.{layers - 1}."  # SD 2 skips OpenCLIP's final layer:
        for key in [k for k in out if k.startswith(last)]:  # write a copy in its place
            out[key.replace(f"resblocks.{layers - 1}.", f"resblocks.{layers}.")] = out[key].clone()
        config, device = base.text_encoder.config, out[OPENCLIP + "positional_embedding"].device
        projection = torch.zeros(config.hidden_size, config.projection_dim, device=device)
        out[OPENCLIP + "text_projection"] = projection
    out["scale_factor"] = torch.tensor(float(base.vae.config.scaling_factor), dtype=torch.float64)
    return out


def _openclip_layer_name(rest: str) -> str:
    """`self_attn.out_proj.weight` -> `attn.out_proj.weight`, `mlp.fc1.bias` -> `mlp.c_fc.bias`."""
    for old, new in _CLIP_LAYER.items():
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    raise KeyError(f"text encoder parameter {rest} has no OpenCLIP name")


def save_ldm_checkpoint(base: BaseModel, path: str | Path, style: str | None = None) -> Path:
    """Write `base` as one original-layout checkpoint file (see `diffusers_to_ldm` for `style`).

    `.safetensors` -> a flat safetensors file; anything else -> `torch.save({"state_dict": ...})`.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in diffusers_to_ldm(base, style).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, str(path))
    return path
