"""The `temporal` export format: a run's own layers alone, to put on the base they were trained on.

    sdvideo export runs/drive --out drive-temporal.safetensors          # fp16; --dtype fp32 keeps them exact
    sdvideo sample --run drive-temporal.safetensors --base sd15/ --prompt "a road" --out samples/

One safetensors file holding every parameter a run adds to its base: the temporal convolutions and temporal
attention, the fps embedding (`video_unet._is_temporal_name`) and, for a run trained with `--task`, the
masked-frame conditioning's input convolution (`frame_conditioning.py`). Names are the `VideoUNet`'s. Its
metadata (strings, JSON where structured):

    format, format_version   "sdvideo-temporal", "1"
    dtype                    "fp16", "bf16" or "fp32": the stored weights' precision
    video_unet_config        the VideoUNet's config: temporal options, condition_channels, and the base UNet's
                             config (`unet_config`) the layers were built for
    run_config               the run's config.json entries sampling reads (`pipeline.SAMPLING_KEYS`: default
                             fps, size, frames, noise prior), and `train`, `task`
    base, base_identity      the base the run was trained on: its folder or file name (not the local path),
                             and its identity (VAE, text encoder, UNet fingerprints; `run_identity.base_identity`),
                             checked on loading
    sdvideo_version          the version that wrote it

The file is read with safetensors only (nothing unpickled). Reading refuses, in one line naming the file, a file
that is truncated or not this format, layers built for another UNet (block channels, blocks, cross-attention
width), a base other than the recorded one, and any parameter missing, extra or of another shape.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import __version__
from ..atomic_files import atomic_path
from ..checks import check_out_file
from ..models.base import BaseModel, load_base
from ..models.video_unet import VideoUNet, _is_temporal_name, _plain, inflate
from ..run_identity import base_identity, base_mismatch
from . import ExportResult, read_run_config

FORMAT = "sdvideo-temporal"
VERSION = 1
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
RUN_INFO_KEYS = ("train", "task")  # stored beside the sampling keys: what the run trained
# The base UNet's config entries that decide where temporal layers go and what they see, with their names in
# messages; compared before the weights so that layers for another model say so in words.
ARCHITECTURE = (
    ("block_out_channels", "block channels"),
    ("layers_per_block", "layers per block"),
    ("down_block_types", "down blocks"),
    ("up_block_types", "up blocks"),
    ("transformer_layers_per_block", "transformer layers per block"),
    ("cross_attention_dim", "cross-attention width"),
    ("in_channels", "latent channels"),
)


def is_added_name(name: str) -> bool:
    """A VideoUNet parameter its base does not have: temporal layers, fps embedding, frame conditioning."""
    return _is_temporal_name(name) or name.startswith("frame_conditioning.")


def spatial_training(config: dict[str, Any]) -> str | None:
    """The run's `--train` value when it trained weights of the base UNet too ("all", "temporal+conv_in"), else
    None (older runs without the key trained the temporal layers alone)."""
    train = str(config.get("train") or "temporal")
    if train == "all" or (train.startswith("temporal+") and any(train.partition("+")[2].split(","))):
        return train
    return None


def video_unet_kwargs(config: dict[str, Any], where: str) -> dict[str, Any]:
    """A saved VideoUNet config as the constructor's arguments; an option this version does not know is
    refused (its layers would be left out)."""
    known = set(inspect.signature(VideoUNet.__init__).parameters) - {"self"}
    plain = _plain(dict(config))
    unknown = sorted(set(plain) - known)
    if unknown:
        raise ValueError(f"{where}: temporal layers with option(s) {', '.join(unknown)} that this sdvideo "
                         f"({__version__}) does not know; update sdvideo")
    if not isinstance(plain.get("unet_config"), dict):
        raise ValueError(f"{where}: the VideoUNet config has no unet_config; export it again with `sdvideo export`")
    return plain


def added_shapes_of(video: VideoUNet) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter `video` adds to its base."""
    return {k: tuple(v.shape) for k, v in video.state_dict().items() if is_added_name(k)}


def added_shapes(config: dict[str, Any], where: str = "config") -> dict[str, tuple[int, ...]]:
    """`added_shapes_of` a VideoUNet of `config`, built on the meta device (no memory, a second at the SD size)."""
    with torch.device("meta"):
        video = VideoUNet(**video_unet_kwargs(config, where))
    return added_shapes_of(video)


# ---------------------------------------------------------------------------------------------- writing
def export(run: str | Path, out: str | Path, dtype: str = "fp16") -> ExportResult:
    """Write the added layers of the run in `run` (a run folder or RUN/best; the weights `sample --run RUN`
    uses: RUN/unet/, the EMA weights when EMA was on) to `out` (.safetensors) in `dtype`. Refuses, before
    writing anything, a run that trained weights of the base UNet too: the file would lose them."""
    from ..sampling.pipeline import SAMPLING_KEYS

    run, out = Path(run), Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the temporal format is a .safetensors file; name it e.g. {out.stem or 'run'}"
                         "-temporal.safetensors")
    check_out_file(out)
    config = read_run_config(run)
    spatial = spatial_training(config)
    if spatial:
        raise ValueError(f"{run} trained weights of the base UNet too (--train {spatial}); the temporal format "
                         f"holds the temporal layers alone and would lose them: share the run folder (config.json "
                         "and unet/) instead")
    folder, video_config, shapes = run_added_layers(run)
    tensors = read_run_tensors(folder, shapes)
    check_range(run, tensors, dtype)
    stored = {name: t.to(DTYPES[dtype]).contiguous() for name, t in sorted(tensors.items())}
    metadata = {
        "format": FORMAT,
        "format_version": str(VERSION),
        "dtype": dtype,
        "video_unet_config": json.dumps(video_config, sort_keys=True),
        "run_config": json.dumps({k: config[k] for k in (*SAMPLING_KEYS, *RUN_INFO_KEYS) if k in config},
                                 sort_keys=True),
        "base": Path(str(config.get("base_trained_on") or config.get("base") or "")).name,  # no local path
        "sdvideo_version": __version__,
    }
    if config.get("base_identity"):
        metadata["base_identity"] = json.dumps(config["base_identity"], sort_keys=True)
    with atomic_path(out) as tmp:
        save_file(stored, str(tmp), metadata=metadata)
    return ExportResult(path=out, tensors=len(stored), parameters=sum(t.numel() for t in stored.values()),
                        bytes=out.stat().st_size, dtype=dtype)


def run_added_layers(run: Path) -> tuple[Path, dict[str, Any], dict[str, tuple[int, ...]]]:
    """(the unet/ folder `sample --run RUN` uses, its VideoUNet config, name -> shape of what it adds to its base)."""
    from ..sampling.pipeline import trained_unet_folder

    folder = trained_unet_folder(run)
    video_config = _plain(json.loads((folder / "config.json").read_text()))
    return folder, video_config, added_shapes(video_config, str(folder / "config.json"))


def check_range(run: Path, tensors: dict[str, torch.Tensor], dtype: str) -> None:
    """Refuse weights `dtype` cannot hold (fp16 tops out at 65504), naming one."""
    target = DTYPES[dtype]
    if target == torch.float32:
        return
    limit = torch.finfo(target).max
    for name, t in tensors.items():
        if t.numel() and t.abs().max() > limit:
            raise ValueError(f"{run}: {name} holds values beyond {dtype}'s range ({limit:g}); export with --dtype fp32")


def read_run_tensors(folder: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The `shapes` tensors from RUN/unet's safetensors file(s), in fp32; a missing or misshapen one is a
    damaged run (one line naming it)."""
    from ..sampling.pipeline import damaged_weights as damaged

    found: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                for name in f.keys():
                    if name in shapes:
                        found[name] = f.get_tensor(name).to(torch.float32)
        except SafetensorError as exc:
            raise damaged(path, exc) from None
    missing = [n for n in shapes if n not in found]
    wrong = [n for n in found if tuple(found[n].shape) != shapes[n]]
    if missing or wrong:
        what = f"{len(missing)} of its added parameters missing (e.g. {missing[0]})" if missing else \
            f"{wrong[0]} of shape {tuple(found[wrong[0]].shape)}, not {shapes[wrong[0]]}"
        raise damaged(folder, ValueError(f"the weights do not match unet/config.json: {what}"))
    return found


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class TemporalFile:
    """What a temporal file's header says (no weights read)."""

    path: Path
    video_config: dict[str, Any]              # the VideoUNet's config, unet_config included
    run_config: dict[str, Any]                # the run's config.json entries sampling reads
    base: str                                 # the base the run was trained on (its folder or file name)
    base_identity: dict[str, Any] | None      # and its identity, when the run recorded one
    dtype: str
    shapes: dict[str, tuple[int, ...]]        # tensor name -> shape


def is_temporal_file(path: str | Path) -> bool:
    """A path to load as a temporal file (by its name: `.safetensors`), not as a run or pipeline folder."""
    return Path(path).suffix == ".safetensors" and not Path(path).is_dir()


def read_header(path: str | Path) -> TemporalFile:
    """The header of a temporal file; a one-line error naming the file for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a temporal-layers file from `sdvideo export`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except SafetensorError as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"{path}: not a readable safetensors file ({detail}): truncated or damaged? copy or "
                         "export it again") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sdvideo temporal-layers file ({_what_it_is(metadata, shapes)}); "
                         "`sdvideo export RUN --format temporal` writes them")
    version = metadata.get("format_version", "")
    if not version.isdigit() or int(version) > VERSION:
        raise ValueError(f"{path}: temporal-layers format version {version or '?'} (this sdvideo, {__version__}, "
                         f"reads up to {VERSION}); update sdvideo")
    try:
        video_config = json.loads(metadata["video_unet_config"])
        run_config = json.loads(metadata.get("run_config") or "{}")
        identity = json.loads(metadata["base_identity"]) if metadata.get("base_identity") else None
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: its metadata is damaged ({type(exc).__name__}: {exc}); export it again") from None
    return TemporalFile(path=path, video_config=video_config, run_config=run_config, base=metadata.get("base", ""),
                        base_identity=identity, dtype=metadata.get("dtype", "?"), shapes=shapes)


def _what_it_is(metadata: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> str:
    """A few words on a safetensors file that is not a temporal file, from its metadata and names."""
    names = list(shapes)
    if any("motion_modules." in n for n in names):
        return "it holds an AnimateDiff motion module"
    if any("lora" in n.lower() for n in names):
        return "it holds a LoRA"
    if any(n.startswith(("model.diffusion_model.", "first_stage_model.")) for n in names):
        return "it holds a whole Stable Diffusion checkpoint"
    if metadata.get("format"):
        return f"its metadata says format {metadata['format']!r}"
    return f"no sdvideo metadata; {len(names)} tensors" + (f", e.g. {names[0]}" if names else "")


def load(path: str | Path, base: str | Path | BaseModel | None, dtype: torch.dtype = torch.float32,
         device: torch.device | str | None = None, check_base: bool = True,
         ) -> tuple[VideoUNet, BaseModel, TemporalFile]:
    """The base at `base` (a path, or a loaded BaseModel with its `source`) inflated with the file's temporal
    options and its layers loaded: (video UNet in eval mode, the base, the header).

    check_base: refuse a base whose VAE, text encoder or UNet differ from the ones the run recorded (False:
    put the layers on any base of the same architecture, e.g. a fine-tune of it)."""
    header = read_header(path)
    path = header.path
    if base is None:
        raise ValueError(f"{path} holds only temporal layers: pass --base with the Stable Diffusion they were "
                         f"trained on ({header.base or 'recorded nowhere'})")
    kwargs = video_unet_kwargs(header.video_config, str(path))
    if isinstance(base, BaseModel):
        model, where = base, base.source
        for module in (model.unet, model.vae, model.text_encoder):
            module.to(device=device, dtype=dtype)
    else:
        model, where = load_base(base, dtype=dtype, device=device), str(base)
    check_architecture(header, dict(model.unet.config), where)
    if check_base and header.base_identity:
        reason = base_mismatch(header.base_identity, base_identity(model), unet=True)
        if reason:
            raise ValueError(f"{where} is not the base model {path} was trained on ({reason}; it was trained on "
                             f"{header.base or 'a base not named'}); pass that base model as --base")
    video = inflate(model.unet, **{k: v for k, v in kwargs.items() if k != "unet_config"})
    expected = added_shapes_of(video)
    check_shapes(header, expected, where)
    with safe_open(str(path), framework="pt") as f:
        tensors = {name: f.get_tensor(name) for name in expected}
    video.load_state_dict(tensors, strict=False)  # every added parameter, checked above; the base's are its own
    return video.eval(), model, header


def check_architecture(header: TemporalFile, unet_config: dict[str, Any], where: str) -> None:
    """Refuse a base UNet other than the one the file's layers were built for, naming what differs."""
    theirs = header.video_config["unet_config"]
    for key, label in ARCHITECTURE:
        a, b = _normalised(key, theirs), _normalised(key, unet_config)
        if a != b:
            raise ValueError(f"{header.path} holds temporal layers for a UNet with {label} {_show(a)}; {where} has "
                             f"{_show(b)}; pass the base they were trained on ({header.base or 'recorded nowhere'})")


def check_shapes(header: TemporalFile, expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Every added parameter of the model in the file, none extra, each of the same shape (one line)."""
    missing = [n for n in expected if n not in header.shapes]
    extra = [n for n in header.shapes if n not in expected]
    wrong = [n for n in expected if n in header.shapes and header.shapes[n] != expected[n]]
    if not (missing or extra or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the model's temporal parameters missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} the model has no place for (e.g. {extra[0]})")
    if wrong:
        n = wrong[0]
        parts.append(f"{len(wrong)} of another shape (e.g. {n}: {list(header.shapes[n])} in the file, "
                     f"{list(expected[n])} on {where})")
    raise ValueError(f"{header.path} does not fit the temporal layers of {where}: {'; '.join(parts)}; export it "
                     "again from its run")


def _normalised(key: str, config: dict[str, Any]) -> Any:
    value = _plain(config.get(key))
    if key == "transformer_layers_per_block" and isinstance(value, int):
        value = [value] * len(config.get("down_block_types") or [])
    return value


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def file_bytes(unet_config: dict[str, Any], dtype: str = "fp16", **temporal_options: Any) -> int:
    """The weights' bytes of a temporal file for a base UNet of `unet_config` (the header adds tens of KB):
    counted on the meta device, nothing allocated."""
    shapes = added_shapes(dict(unet_config=_plain(dict(unet_config)), **temporal_options))
    numel = sum(int(torch.Size(s).numel()) for s in shapes.values())
    return numel * torch.finfo(DTYPES[dtype]).bits // 8
