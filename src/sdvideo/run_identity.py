"""What a training run was made from, recorded at train time and checked when the run is loaded or resumed.

`sdvideo train` writes into RUN/config.json (and the same identities into every checkpoint's state.json):
    "base"              the base model's absolute path (--base made absolute against the working folder);
                        the one to edit when the base has moved
    "base_trained_on"   the same path, kept as it was at train time (named in errors)
    "base_from_run"     that path relative to the run folder (found again when base and run move together)
    "base_identity"     `base.identity()` (VAE, text encoder, scaling factor: what a latent cache records
                        too) plus "unet": the base UNet's class and weights fingerprint
    "data_fingerprint"  `cache_fingerprint` of the --data cache
`run_base_path` finds a run's base from any working folder; `check_run_base` refuses a base whose
identity differs from the recorded one. Runs without "base_identity" (older) load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .data.cache import cache_mismatch
from .models.base import _fingerprint


def absolute(path: str | Path) -> str:
    """`path` made absolute against the working folder, `~` expanded. Symbolic links are kept: a
    single-file base in a model hub's cache is a link whose target has no .safetensors suffix."""
    return os.path.abspath(os.path.expanduser(str(path)))


def base_identity(base: Any) -> dict[str, Any]:
    """`base.identity()` plus "unet": the base UNet's class and weights fingerprint (the frozen weights a
    run trains beside, and the image model `eval` compares with)."""
    return {**base.identity(), "unet": {"class": type(base.unet).__name__, "fingerprint": _fingerprint(base.unet)}}


def base_record(base_path: str | Path, identity: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """config.json's "base", "base_from_run" and "base_identity" for a run in `run_dir` on the base at
    `base_path`, whose `base_identity` is `identity`."""
    path = absolute(base_path)
    record: dict[str, Any] = {"base": path, "base_trained_on": path, "base_identity": identity}
    try:
        record["base_from_run"] = os.path.relpath(path, absolute(run_dir))
    except ValueError:  # on another drive (Windows): only the absolute path
        pass
    return record


def base_mismatch(recorded: dict[str, Any] | None, identity: dict[str, Any], unet: bool = False) -> str | None:
    """Why a base of `identity` is not the one `recorded`, in a few words; None when it is. `unet`: the
    UNet fingerprints are compared too, where both identities hold one."""
    reason = cache_mismatch(recorded or {}, identity)
    if reason is None and unet:
        a, b = (recorded or {}).get("unet"), (identity or {}).get("unet")
        if a and b and a != b:
            reason = f"UNet differs (weights fingerprint {a.get('fingerprint')} vs {b.get('fingerprint')})"
    return reason


def run_base_path(run: str | Path, config: dict[str, Any]) -> Path:
    """The base model of the run in `run` (its config.json: `config`), whatever the working folder.

    An absolute "base" is used where it exists, else "base_from_run" against the run folder (base and run
    moved together). A relative "base" (an older run's --base as typed, relative to a folder not recorded)
    is looked for in the run folder and its parents, then in the working folder."""
    run_dir = Path(absolute(run))
    recorded = Path(os.path.expanduser(str(config["base"])))
    if recorded.is_absolute():
        candidates = [recorded]
        if config.get("base_from_run"):
            candidates.append(run_dir / str(config["base_from_run"]))
    else:
        candidates = [folder / recorded for folder in (run_dir, *run_dir.parents)] + [Path.cwd() / recorded]
    for candidate in candidates:
        if candidate.exists():
            return Path(os.path.normpath(candidate))
    raise FileNotFoundError(f"{run_dir / 'config.json'}: the base model the run was trained on ({config['base']}) "
                            "is not there; set \"base\" in that file to where the base model is now")


def check_run_base(run: str | Path, config: dict[str, Any], base: Any, path: str | Path, unet: bool = False,
                   also: str = "") -> None:
    """Raise a one-line ValueError when `base` (loaded from `path`) is not the base recorded in the run's
    config.json (`config`); runs without a recorded identity pass. `unet`: compare the base UNet too (where
    it is used). `also`: another fix to offer, appended to the message."""
    recorded = config.get("base_identity")
    if not recorded:
        return
    reason = base_mismatch(recorded, base_identity(base) if unet else base.identity(), unet)
    if reason:
        trained_on = config.get("base_trained_on") or config["base"]
        raise ValueError(f"{path} is not the base model {run} was trained on ({reason}; it was trained on "
                         f"{trained_on}); set \"base\" in {Path(run) / 'config.json'} to that base model{also}")


def cache_fingerprint(info: dict[str, Any]) -> str:
    """16 hex digits of what a latent cache holds (`load_cache_info`'s result): its settings, base identity,
    captions and each video's key, shape, shots, captions and crc32. A copied or moved cache keeps it;
    adding, replacing or re-encoding videos differently changes it."""
    content: dict[str, Any] = {k: info.get(k) for k in ("fps", "size", "scaling_factor", "scene_threshold",
                                                         "latent_shape", "base", "captions")}
    content["videos"] = [[v.get("key"), v.get("shape"), v.get("segments"), v.get("captions"), v.get("crc32")]
                         for v in info.get("videos", [])]
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
