"""CLIP tokenizers built offline, without a model hub.

A single-file Stable Diffusion checkpoint carries no tokenizer, and the tiny test models need one
whose vocabulary fits their 514-entry embedding table. Both tokenizers here are ordinary
`transformers.CLIPTokenizer`s (lower-casing, byte-level BPE with the `</w>` end-of-word suffix,
`<|startoftext|>` / `<|endoftext|>` around the ids, padding with `<|endoftext|>`):

- `char_level_clip_tokenizer()`: no merges, so every character is one token (514 tokens).
- `clip_bpe_tokenizer()`: the real 49408-token CLIP vocabulary, rebuilt from the BPE merges file
  `bpe_simple_vocab_16e6.txt.gz` that some installed packages (e.g. `open_clip`) ship.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

from transformers import CLIPTokenizer

MODEL_MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Packages known to ship OpenAI's merges file, and where inside them it lies.
_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_BPE_PACKAGES = ("open_clip", "clip")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters.

    Printable Latin-1 bytes map to themselves; the others (control characters, space, ...) map to
    the code points from 256 on, in byte order, so that no token contains whitespace.
    """
    byte_values = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = [chr(b) for b in byte_values]
    shifted = 0
    for b in range(256):
        if b not in byte_values:
            byte_values.append(b)
            chars.append(chr(256 + shifted))
            shifted += 1
    return dict(zip(byte_values, chars, strict=True))


def _byte_tokens() -> list[str]:
    """The 256 byte characters followed by the same 256 with `</w>`, in OpenAI CLIP's order."""
    chars = list(bytes_to_unicode().values())
    return chars + [c + "</w>" for c in chars]


def _make(vocab: list[str], merges: list[tuple[str, str]], folder: str | Path | None) -> CLIPTokenizer:
    tokenizer = CLIPTokenizer(
        vocab={token: i for i, token in enumerate(vocab)},
        merges=merges,
        model_max_length=MODEL_MAX_LENGTH,
    )
    if folder is not None:
        tokenizer.save_pretrained(str(folder))
    return tokenizer


def char_level_clip_tokenizer(folder: str | Path | None = None) -> CLIPTokenizer:
    """A CLIP tokenizer with no merges: 256 byte chars, the same with `</w>`, BOS=512, EOS=513.

    514 tokens, the `vocab_size` of the `tiny` and `demo` presets; `model_max_length` is 77.
    "a cat" -> [512, 320 ("a</w>"), 66 ("c"), 64 ("a"), 339 ("t</w>"), 513]. When `folder` is
    given the tokenizer is also saved there (`save_pretrained`), so `CLIPTokenizer.from_pretrained`
    can load it back.
    """
    return _make(_byte_tokens() + [BOS, EOS], [], folder)


def find_clip_bpe_file() -> Path | None:
    """The path of an installed `bpe_simple_vocab_16e6.txt.gz`, looked up without importing."""
    for package in _BPE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / _BPE_FILE
            if candidate.is_file():
                return candidate
    return None


def clip_bpe_tokenizer(folder: str | Path | None = None, bpe_file: str | Path | None = None) -> CLIPTokenizer | None:
    """OpenAI CLIP's 49408-token BPE tokenizer rebuilt from a locally installed merges file.

    The vocabulary is built exactly as OpenAI CLIP does: merges = lines[1 : 49152 - 256 - 2 + 1]
    of the file; vocab = 256 byte chars + the same with `</w>` + the concatenation of each merge
    + [`<|startoftext|>` (49406), `<|endoftext|>` (49407)]. This is the tokenizer of SD 1.x
    (CLIP ViT-L/14) and SD 2.x (OpenCLIP ViT-H/14). Returns None when no installed package ships
    the merges file (or `bpe_file`, a merges file in the same gzip format, when given).
    """
    path = Path(bpe_file) if bpe_file is not None else find_clip_bpe_file()
    if path is None:
        return None
    lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1] if line.strip()]
    vocab = _byte_tokens() + ["".join(merge) for merge in merges] + [BOS, EOS]
    return _make(vocab, merges, folder)  # type: ignore[arg-type]
