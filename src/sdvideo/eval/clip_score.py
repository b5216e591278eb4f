"""CLIP score per frame (optional): how well the frames match their prompt, with local CLIP weights.

The score of a video is 100 x the mean over its frames of max(0, cosine(image embedding, text
embedding)) (the CLIPSIM of text-to-video papers). The model is a transformers `CLIPModel` folder
with its tokenizer and image processor (e.g. a saved openai/clip-vit-base-patch32); nothing is
downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def clip_folder(path: str | Path) -> Path:
    """`path` when it looks like a saved CLIP model folder; a one-line error otherwise."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a CLIP model folder (no config.json); pass a local folder saved "
                                "with CLIPModel.save_pretrained plus its processor")
    return folder


def load_clip(path: str | Path, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) from a local folder; a one-line error when it is not one."""
    from transformers import CLIPModel, CLIPProcessor

    folder = clip_folder(path)
    try:
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{folder}: cannot load a CLIP model and processor ({first[:160]})") from None
    return model, processor


@torch.no_grad()
def clip_scores(videos: Sequence[np.ndarray], prompts: Sequence[str], path: str | Path,
                device: torch.device | str = "cpu") -> list[float]:
    """One score per video: uint8 (T, H, W, 3) frames against its prompt (see the module docstring)."""
    if len(videos) != len(prompts):
        raise ValueError(f"{len(videos)} videos for {len(prompts)} prompts")
    model, processor = load_clip(path, device)
    scores = []
    for video, prompt in zip(videos, prompts):
        inputs = processor(text=[prompt], images=list(np.asarray(video)), return_tensors="pt", padding="max_length",
                           truncation=True, max_length=model.config.text_config.max_position_embeddings)
        out = model(**{k: v.to(device) for k, v in inputs.items()})
        image = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)  # (T, d)
        text = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)  # (1, d)
        scores.append(float(100.0 * (image @ text.T).clamp(min=0).mean()))
    return scores
