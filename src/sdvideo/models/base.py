"""The pretrained text-to-image base: load a local Stable Diffusion 1.x/2.x, or build a random one.

`load_base(path)` reads a diffusers folder or a single original (CompVis/LDM) checkpoint file
(`.ckpt` / `.safetensors`, see `ldm_checkpoint.py`); `build_base(preset)` makes random-weight
networks of a named size (`presets.py`) for tests and the demo. Nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from sdvideo.models.presets import preset
from sdvideo.models.tokenizer import char_level_clip_tokenizer, clip_bpe_tokenizer

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer")
SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    steps_offset=1,
    prediction_type="epsilon",
)
_SD_DOWN_TYPES = {"CrossAttnDownBlock2D", "DownBlock2D"}
_SD_UP_TYPES = {"CrossAttnUpBlock2D", "UpBlock2D"}


class BaseModelError(ValueError):
    """A base model that cannot be used; the message is one line naming the path."""


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters, for wrapping low-level errors."""
    text = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)[:200]


def sd_scheduler(prediction_type: str = "epsilon", config: dict[str, Any] | None = None) -> DDPMScheduler:
    """SD's training noise schedule: 1000 steps, scaled_linear betas 0.00085..0.012, no clipping.

    `config` (e.g. a diffusers `scheduler_config.json` of any scheduler class) overrides the
    defaults; `prediction_type` ("epsilon" or "v_prediction") overrides both.
    """
    merged = dict(SD_SCHEDULER, **{k: v for k, v in (config or {}).items() if not k.startswith("_")})
    merged["prediction_type"] = prediction_type
    return DDPMScheduler.from_config(merged)


def check_sd_family(unet: dict[str, Any], text_hidden: int, latent_channels: int, where: str) -> None:
    """Raise `BaseModelError` unless the UNet config is a plain SD 1.x/2.x text-to-image UNet."""
    expected = "expected a Stable Diffusion 1.x/2.x text-to-image base"
    if unet.get("in_channels") != 4 or unet.get("out_channels") != 4:
        raise BaseModelError(
            f"{where}: UNet has in_channels={unet.get('in_channels')}, out_channels="
            f"{unet.get('out_channels')} (an inpainting/depth/upscaler variant?); {expected} (4 and 4)"
        )
    down, up = set(unet.get("down_block_types", ())), set(unet.get("up_block_types", ()))
    mid = unet.get("mid_block_type") or "UNetMidBlock2DCrossAttn"
    if not down <= _SD_DOWN_TYPES or not up <= _SD_UP_TYPES or mid != "UNetMidBlock2DCrossAttn":
        raise BaseModelError(f"{where}: UNet blocks {sorted(down | up | {mid})} are not SD's; {expected}")
    extras = [k for k in ("class_embed_type", "addition_embed_type", "num_class_embeds") if unet.get(k)]
    if extras:
        raise BaseModelError(f"{where}: UNet has {', '.join(extras)} (SDXL/upscaler?); {expected}")
    if unet.get("cross_attention_dim") != text_hidden:
        raise BaseModelError(
            f"{where}: UNet cross_attention_dim={unet.get('cross_attention_dim')} does not match the "
            f"text encoder's hidden size {text_hidden}; {expected}"
        )
    if latent_channels != unet["in_channels"]:
        raise BaseModelError(f"{where}: VAE has {latent_channels} latent channels, UNet takes 4; {expected}")


def _fingerprint(module: torch.nn.Module, max_elements: int = 1 << 16) -> str:
    """sha256 (16 hex digits) of the first/middle/last weights rounded to fp16 (dtype-independent)."""
    state = module.state_dict()
    names = [n for n in state if state[n].is_floating_point()]
    picked = sorted({names[0], names[len(names) // 2], names[-1]}) if names else []
    return tensors_fingerprint(((name, state[name]) for name in picked), max_elements)


def tensors_fingerprint(named: Iterable[tuple[str, torch.Tensor]], max_elements: int = 1 << 16) -> str:
    """sha256 (16 hex digits) of each (name, tensor)'s name and first `max_elements` values rounded to fp16."""
    digest = hashlib.sha256()
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(tensor.detach().flatten()[:max_elements].to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class BaseModel:
    """The four networks of a Stable Diffusion base, plus its training noise schedule.

    unet: (B, 4, h, w) latents, (B,) timesteps, (B, 77, D) text -> (B, 4, h, w) noise/v.
    vae: (B, 3, H, W) images in [-1, 1] <-> (B, 4, H/f, W/f) latents (f = 2**(levels-1)).
    text_encoder: (B, 77) token ids -> (B, 77, D) hidden states; D == unet cross_attention_dim.
    """

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDPMScheduler
    source: str

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.prediction_type)

    def save(self, folder: str | Path) -> Path:
        """Write a standard diffusers `StableDiffusionPipeline` folder (safetensors weights)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        self.text_encoder.save_pretrained(folder / "text_encoder")
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        self.scheduler.save_pretrained(folder / "scheduler")
        index = {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": diffusers.__version__,
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "DDPMScheduler"],
            "safety_checker": [None, None],
            "feature_extractor": [None, None],
            "requires_safety_checker": False,
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        return folder

    def max_length(self) -> int:
        """Token sequence length: the tokenizer's, clamped to the text encoder's positions (77)."""
        return min(int(self.tokenizer.model_max_length), self.text_encoder.config.max_position_embeddings)

    def encode_text(self, prompts: list[str], device: torch.device | str | None = None) -> torch.Tensor:
        """(B,) prompts -> (B, 77, D) text encoder hidden states (padded to max length, truncated)."""
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length(), truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.text_encoder.device)
        with torch.no_grad():
            hidden = self.text_encoder(ids)[0]
        return hidden if device is None else hidden.to(device)

    def identity(self) -> dict[str, Any]:
        """A JSON-able record of the VAE and text encoder, to tell whether latents/embeddings match."""
        vae_keys = ("in_channels", "latent_channels", "block_out_channels", "layers_per_block")
        text_keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "hidden_act", "max_position_embeddings")
        text_config = self.text_encoder.config.to_dict()
        return {
            "vae": {
                "class": type(self.vae).__name__,
                "config": {k: _jsonable(self.vae.config.get(k)) for k in vae_keys},
                "fingerprint": _fingerprint(self.vae),
            },
            "text_encoder": {
                "class": type(self.text_encoder).__name__,
                "config": {k: _jsonable(text_config.get(k)) for k in text_keys},
                "fingerprint": _fingerprint(self.text_encoder),
            },
            "scaling_factor": float(self.vae.config.scaling_factor),
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def text_config(section: dict[str, Any]) -> CLIPTextConfig:
    """CLIPTextConfig whose BOS/EOS/PAD ids are the last two ids, as in every CLIP vocabulary."""
    vocab = section["vocab_size"]
    ids = dict(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    return CLIPTextConfig(**{**ids, **section})


def builtin_tokenizer(vocab_size: int) -> CLIPTokenizer | None:
    """The offline tokenizer fitting a text encoder's vocabulary (514: char-level, 49408: CLIP BPE)."""
    if vocab_size == 514:
        return char_level_clip_tokenizer()
    if vocab_size == 49408:
        return clip_bpe_tokenizer()
    return None


def build_base(
    preset_name: str = "tiny",
    seed: int = 0,
    prediction_type: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> BaseModel:
    """Random-weight base of a named size (`presets.py`), deterministic for a given seed.

    `overrides` updates preset sections, e.g. `{"unet": {"use_linear_projection": True}}`. The
    tokenizer is the char-level one (514 tokens) unless the text encoder has CLIP's 49408-token
    vocabulary and the real CLIP BPE merges are installed; a smaller tokenizer is fine for
    random-weight size/speed tests.
    """
    cfg = preset(preset_name)
    for section, values in (overrides or {}).items():
        cfg[section].update(copy.deepcopy(values))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet"])
    torch.manual_seed(seed)
    vae = AutoencoderKL(**cfg["vae"])
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config(cfg["text_encoder"]))
    tokenizer = builtin_tokenizer(cfg["text_encoder"]["vocab_size"]) or char_level_clip_tokenizer()
    scheduler = sd_scheduler(prediction_type or cfg["scheduler"].get("prediction_type", "epsilon"))
    for module in (unet, vae, text_encoder):
        module.eval()
    return BaseModel(unet, vae, text_encoder, tokenizer, scheduler, source=f"preset:{preset_name}")


def load_tokenizer(folder: Path, where: str) -> CLIPTokenizer:
    """`CLIPTokenizer.from_pretrained(folder)` offline; failures become a one-line `BaseModelError`."""
    try:
        return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a one-line error
        raise BaseModelError(f"{where}: cannot load a CLIP tokenizer from {folder} ({one_line(exc)})") from exc


def _variant(folder: Path) -> str | None:
    """"fp16" when a component folder holds only `*.fp16.*` weights (a variant download), else None."""
    weights = [f.name for f in folder.iterdir() if f.suffix in (".safetensors", ".bin")]
    return "fp16" if weights and all(".fp16." in name for name in weights) else None


def _load_folder(path: Path, tokenizer: str | Path | None, prediction_type: str | None) -> BaseModel:
    where = str(path)
    if not (path / "model_index.json").is_file() and not (path / "unet" / "config.json").is_file():
        raise BaseModelError(
            f"{where}: not a diffusers Stable Diffusion folder (no model_index.json or unet/config.json)"
        )
    needed = [c for c in COMPONENTS if not (c == "tokenizer" and tokenizer is not None)]
    missing = [c + "/" for c in needed if not (path / c).is_dir()]
    if missing:
        raise BaseModelError(f"{where}: diffusers folder lacks {', '.join(missing)}; expected {'/, '.join(COMPONENTS)}/")
    try:
        unet_cfg = UNet2DConditionModel.load_config(str(path), subfolder="unet", local_files_only=True)
        vae_cfg = AutoencoderKL.load_config(str(path), subfolder="vae", local_files_only=True)
        text_cfg = CLIPTextConfig.from_pretrained(str(path / "text_encoder"), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise BaseModelError(f"{where}: cannot read the component configs ({one_line(exc)})") from exc
    check_sd_family(unet_cfg, text_cfg.hidden_size, vae_cfg.get("latent_channels", 4), where)
    modules: dict[str, Any] = {}
    for name, load in (
        ("unet", partial(UNet2DConditionModel.from_pretrained, str(path), subfolder="unet")),
        ("vae", partial(AutoencoderKL.from_pretrained, str(path), subfolder="vae")),
        ("text_encoder", partial(CLIPTextModel.from_pretrained, str(path / "text_encoder"))),
    ):
        try:
            modules[name] = load(local_files_only=True, variant=_variant(path / name))
        except Exception as exc:  # noqa: BLE001
            raise BaseModelError(f"{where}: cannot load {name}/ ({one_line(exc)})") from exc
    tok = load_tokenizer(Path(tokenizer) if tokenizer is not None else path / "tokenizer", where)
    sched_cfg: dict[str, Any] = {}
    if (path / "scheduler" / "scheduler_config.json").is_file():
        try:
            sched_cfg = dict(DDPMScheduler.load_config(str(path), subfolder="scheduler", local_files_only=True))
        except Exception as exc:  # noqa: BLE001
            raise BaseModelError(f"{where}: cannot read scheduler/scheduler_config.json ({one_line(exc)})") from exc
    pred = prediction_type or sched_cfg.get("prediction_type") or "epsilon"
    return BaseModel(tokenizer=tok, scheduler=sd_scheduler(pred, sched_cfg), source=where, **modules)


def load_base(
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    tokenizer: str | Path | None = None,
    prediction_type: str | None = None,
    unet_overrides: dict[str, Any] | None = None,
    text_encoder_overrides: dict[str, Any] | None = None,
) -> BaseModel:
    """Load a local SD 1.x/2.x base: a diffusers folder or a single `.ckpt`/`.safetensors` file.

    dtype: the weights' dtype (default float32); device: where to put the networks (default CPU).
    tokenizer: a tokenizer folder, overriding the base's own (a checkpoint file carries none: then
    `tokenizer/` next to it, then an offline CLIP tokenizer is used). prediction_type: "epsilon" or
    "v_prediction", overriding what the base says. unet_overrides / text_encoder_overrides: for a
    single file, corrections to the architecture inferred from the weights; only needed for
    attention head counts that the weights cannot show (see `ldm_checkpoint.infer_configs`).
    Raises `BaseModelError` (one line naming `path`) for anything that is not such a base.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BaseModelError(
            f"{path}: does not exist; expected a diffusers Stable Diffusion folder or a .ckpt/.safetensors file"
        )
    if path.is_dir():
        base = _load_folder(path, tokenizer, prediction_type)
    else:
        from sdvideo.models.ldm_checkpoint import load_ldm_checkpoint

        base = load_ldm_checkpoint(
            path, tokenizer=tokenizer, prediction_type=prediction_type,
            unet_overrides=unet_overrides, text_encoder_overrides=text_encoder_overrides,
        )
    if len(base.tokenizer) > base.text_encoder.config.vocab_size:
        raise BaseModelError(
            f"{path}: the tokenizer has {len(base.tokenizer)} tokens but the text encoder only "
            f"{base.text_encoder.config.vocab_size} embeddings; pass --tokenizer FOLDER with the base's tokenizer"
        )
    dtype = dtype or torch.float32
    for module in (base.unet, base.vae, base.text_encoder):
        if module.dtype != dtype:
            module.to(dtype=dtype)
        if device is not None:
            module.to(device)
        module.eval()
    return base
