"""`VideoPipeline`: a diffusers `DiffusionPipeline` for the video UNet (text-to-video and known frames).

    pipe = VideoPipeline.from_pretrained("runs/drive")         # a training run, or a saved pipeline folder
    pipe.set_scheduler("dpm++")                                # or any diffusers scheduler object
    video = pipe("a volcano", num_frames=16, num_inference_steps=25, seed=0).frames  # (1, 16, 3, H, W)
    pipe.save_pretrained("drive-pipeline")                     # model_index.json + one folder per component

Everything loads offline (`local_files_only`). Known-frame modes: `image_to_video`, `extend` and
`interpolate` (see `conditioning.py`), or pass `condition=` to `__call__`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image
from safetensors import SafetensorError, safe_open
from transformers import CLIPTextModel, CLIPTokenizer

from ..models.base import load_base
from ..models.video_unet import VideoUNet
from ..noise_prior import NoisePrior
from ..run_identity import check_run_base, run_base_path
from .conditioning import (
    FrameCondition,
    check_factor,
    encode_frames,
    extension_condition,
    image_condition,
    interpolation_condition,
)
from .cuda_graphs import GraphedUNet
from .free_init import FreeInit, sample_with_free_init
from .sampler import decode_latents, denoise_video, initial_noise, make_scheduler

OUTPUT_TYPES = {"pt": "pt", "frames": "pt", "np": "np", "numpy": "np", "pil": "pil", "latent": "latent",
                "latents": "latent"}


@dataclass
class VideoPipelineOutput(BaseOutput):
    # "pt": float (b, f, 3, H, W) in [0, 1]; "np": float32 (b, f, H, W, 3) in [0, 1];
    # "pil": one list of PIL images per video; "latent": (b, c, f, h, w) VAE-scaled latents.
    frames: Any


def trained_unet_folder(run: str | Path) -> Path:
    """RUN/unet, the model `sdvideo train` saves at its end; a one-line error when it is not there, or when a
    safetensors file in it is truncated or corrupt (its header is read: milliseconds, no weights loaded)."""
    folder = Path(run) / "unet"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{run}: no trained model in {folder}; did `sdvideo train` finish?")
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except SafetensorError as exc:
            raise damaged_weights(path, exc) from None
    return folder


def damaged_weights(path: Path, exc: BaseException) -> ValueError:
    """The one-line error for a run's weight file that cannot be read; `path`: the file (or RUN/unet)."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    folder = path.parent if path.suffix else path
    return ValueError(f"{path}: the run's weights are damaged ({detail}); restore {folder} from a copy, or rebuild "
                      "it from the run's last checkpoint by running its `sdvideo train` command again with --resume")


def load_video_unet(run: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> VideoUNet:
    """RUN/unet's weights, from safetensors only (a pickled .bin beside or instead of them is never read).
    A weight file the loader cannot read becomes a one-line ValueError naming it (`damaged_weights`)."""
    folder = trained_unet_folder(run)
    try:
        unet = VideoUNet.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    except (SafetensorError, OSError, RuntimeError) as exc:
        # diffusers re-raises a safetensors failure as an OSError (or a RuntimeError) naming the file
        named = [p for p in sorted(folder.glob("*.safetensors")) if p.name in str(exc)]
        if not isinstance(exc, SafetensorError) and not named:
            raise
        raise damaged_weights(named[0] if named else folder, exc) from None
    return unet.to(device).eval()


def default_fps(config: dict[str, Any]) -> float:
    """The frame rate a run trained at (`trained_fps` in its config; the highest of several)."""
    if config.get("trained_fps"):
        return float(max(config["trained_fps"]))
    strides = config.get("strides") or [config.get("stride", 1) or 1]
    return float(config.get("cache_fps", 10.0)) / float(min(strides))


# The entries of a run's config.json that sampling reads (`sampling_defaults`); an exported file keeps them.
SAMPLING_KEYS = ("cache_fps", "trained_fps", "strides", "stride", "cache_size", "frames", "noise_share",
                 "noise_lowpass")


def sampling_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A pipeline's defaults from a run's config.json (or an export's copy of its `SAMPLING_KEYS`): the fps it
    trained at, its size and frames, its noise."""
    return dict(default_fps=default_fps(config), default_size=config.get("cache_size"),
                trained_frames=config.get("frames"),
                noise_prior=dict(share=config.get("noise_share", 0.0), lowpass=config.get("noise_lowpass")))


def is_run_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and (p / "unet").is_dir() and not (p / "model_index.json").exists()


def seed_generators(seed: int | Sequence[int], batch: int) -> list[torch.Generator]:
    """One CPU generator per video: seed + i for an int, or one seed per video."""
    seeds = [int(seed) + i for i in range(batch)] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for {batch} videos; pass one seed or one per prompt")
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


class VideoPipeline(DiffusionPipeline):
    """Text-to-video with a `VideoUNet`: VAE, CLIP text encoder and tokenizer, video UNet, scheduler.

    default_fps: the frame rate the model was trained at (the fps condition and playback rate);
    default_size: training size in pixels; trained_frames: clip length it was trained with;
    noise_prior: the noise the model was trained with (`noise_prior.py`), the initial noise's default.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer, unet: VideoUNet,
                 scheduler: Any, default_fps: float | None = None, default_size: int | None = None,
                 trained_frames: int | None = None, noise_prior: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_to_config(default_fps=default_fps, default_size=default_size, trained_frames=trained_frames,
                                noise_prior=NoisePrior.from_dict(noise_prior).to_dict())

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_run(cls, run: str | Path, scheduler: str | Any = "ddim", device: torch.device | str | None = None,
                 torch_dtype: torch.dtype | None = None, base: str | Path | None = None) -> "VideoPipeline":
        """A pipeline from a training run folder. Its `config.json` names the base model (found from any working
        folder, `run_identity.run_base_path`); `base` loads another path instead. Either way the base's VAE and
        text encoder must be the ones the run recorded (runs that recorded none load unchecked)."""
        path = Path(run) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{run}: not a training run (no config.json); pass the --out folder of `sdvideo train`")
        config = json.loads(path.read_text())
        base_path = Path(base).expanduser() if base is not None else run_base_path(run, config)
        dtype = torch_dtype or torch.float32
        unet = load_video_unet(run, device or "cpu", dtype)
        base = load_base(base_path, dtype=dtype, device=device)
        check_run_base(run, config, base, base_path, also=", or pass that base as base= to VideoPipeline.from_run")
        sched = make_scheduler(scheduler, base.scheduler.config) if isinstance(scheduler, str) else scheduler
        return cls(base.vae, base.text_encoder, base.tokenizer, unet, sched, **sampling_defaults(config))

    @classmethod
    def from_temporal_file(cls, path: str | Path, base: str | Path | None, scheduler: str | Any = "ddim",
                           device: torch.device | str | None = None, torch_dtype: torch.dtype | None = None,
                           check_base: bool = True) -> "VideoPipeline":
        """A pipeline from a file of `sdvideo export --format temporal` put on `base` (a path: the Stable
        Diffusion the run was trained on). Defaults (fps, size, frames, noise) are the run's. One-line ValueErrors
        naming the file for a truncated or foreign file, layers for another UNet, another base (`check_base`
        False: any base of the same architecture, e.g. a fine-tune of it) or weights that do not fit
        (`export/temporal.py`)."""
        from ..export.temporal import load as load_temporal

        dtype = torch_dtype or torch.float32
        unet, model, header = load_temporal(path, base, dtype=dtype, device=device, check_base=check_base)
        sched = make_scheduler(scheduler, model.scheduler.config) if isinstance(scheduler, str) else scheduler
        return cls(model.vae, model.text_encoder, model.tokenizer, unet, sched, **sampling_defaults(header.run_config))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> "VideoPipeline":
        """A saved pipeline folder (diffusers layout), a training run folder, or a file of `sdvideo export` with
        `base=` its Stable Diffusion; never downloads. Weights are read from safetensors only, unless
        `use_safetensors=False` is passed."""
        if is_run_folder(pretrained_model_name_or_path):
            return cls.from_run(pretrained_model_name_or_path, scheduler=kwargs.get("scheduler", "ddim"),
                                torch_dtype=kwargs.get("dtype", kwargs.get("torch_dtype")), base=kwargs.get("base"))
        from ..export.temporal import is_temporal_file

        if is_temporal_file(pretrained_model_name_or_path):  # `sdvideo export`'s temporal layers
            return cls.from_temporal_file(pretrained_model_name_or_path, kwargs.get("base"),
                                          scheduler=kwargs.get("scheduler", "ddim"),
                                          torch_dtype=kwargs.get("dtype", kwargs.get("torch_dtype")))
        kwargs.setdefault("local_files_only", True)
        kwargs.setdefault("use_safetensors", True)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    cuda_graphs: GraphedUNet | None = None  # set by `enable_cuda_graphs`

    def enable_cuda_graphs(self, enabled: bool = True) -> None:
        """Replay each denoising step's UNet call from a CUDA graph (`cuda_graphs.py`): no launch gaps.
        Each size's first call runs plainly and its second records the graph; later videos reuse it."""
        if enabled and self.unet.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the UNet on a CUDA device, not {self.unet.device}")
        self.cuda_graphs = GraphedUNet(self.unet) if enabled else None

    def enable_fast_inference(self, paths=None, **options: Any) -> "VideoPipeline":
        """Faster forms of the UNet's layers for sampling (`VideoUNet.enable_fast_inference`, `sdvideo.fast`), and
        the VAE decoder's upsamplers as 2 x 2 convolutions (with the "subpixel-upsample" path) in a copy of its
        modules sharing the given VAE's weights, so the caller's VAE stays a plain `AutoencoderKL`. Call it before
        compiling. `sdvideo sample`, `interpolate` and `eval` call it. Returns the pipeline."""
        from ..fast import fast_vae

        self.unet.enable_fast_inference(paths, **options)
        if self.vae is not None and (paths is None or "subpixel-upsample" in paths):
            self.register_modules(vae=fast_vae(self.vae))
        return self

    free_init: FreeInit | None = None  # set by `enable_free_init`

    def enable_free_init(self, num_iters: int = 3, use_fast_sampling: bool = False, method: str = "butterworth",
                         order: int = 4, spatial_stop_frequency: float = 0.25,
                         temporal_stop_frequency: float = 0.25) -> "VideoPipeline":
        """Sample `num_iters` times, each time starting from the last video's low frequencies (`free_init.py`;
        FreeInit, with diffusers' options and defaults). Sampling costs `num_iters` times the steps
        (`use_fast_sampling`: (num_iters + 1) / 2 times, coarse to fine). Returns the pipeline."""
        self.free_init = FreeInit(num_iters, use_fast_sampling, method, order, spatial_stop_frequency,
                                  temporal_stop_frequency)
        return self

    def disable_free_init(self) -> None:
        self.free_init = None

    @property
    def free_init_enabled(self) -> bool:
        return self.free_init is not None

    def set_scheduler(self, name: str) -> None:
        """Swap the scheduler by name ("ddim", "dpm++", "euler", ... or a diffusers class name)."""
        self.scheduler = make_scheduler(name, self.scheduler.config)

    # ------------------------------------------------------------------ helpers
    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B,) prompts -> (B, tokens, dim) text encoder hidden states (padded, truncated)."""
        length = min(int(self.tokenizer.model_max_length), self.text_encoder.config.max_position_embeddings)
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

    def encode_video(self, frames: np.ndarray, frames_per_slice: int = 8) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> (1, c, T, h, w) VAE-scaled latents (sliced encoding)."""
        return encode_frames(self.vae, frames, frames_per_slice)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        fps: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        seed: int | list[int] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        condition: FrameCondition | None = None,
        condition_method: str = "auto",
        window_size: int | None = None,
        window_overlap: int | None = None,
        shift_windows: bool = True,
        decode_chunk_size: int = 8,
        enable_time: bool = True,
        eta: float = 0.0,
        noise_prior: NoisePrior | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
    ) -> VideoPipelineOutput | tuple[Any]:
        """Generate one video per prompt.

        num_frames: default the frames trained with (may be more). fps: default the training rate
        (used when the model is fps-conditioned). seed: an int (video i uses seed + i) or one per
        prompt; or pass `generator`(s). window_size / window_overlap: sliding temporal windows
        for long videos in bounded memory, tiled differently at every step so that no frame is always at a
        window's edge (shift_windows=False: one fixed tiling). condition: known frames (interpolation, extension,
        image-to-video) kept by `condition_method` ("auto", "mask", "replace"). noise_prior: how the
        frames' noise is related (default: the noise the model was trained with), for the starting noise and for
        the noise that DDIM with `eta` > 0 or the "dpm++-sde" scheduler adds at each step. After
        `enable_free_init`, the video is sampled several times (FreeInit).
        output_type: "pt" (= "frames"), "np", "pil" or "latent".
        """
        kind = OUTPUT_TYPES.get(output_type)
        if kind is None:
            raise ValueError(f"unknown output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("pass a prompt (a string or a list of strings) or prompt_embeds")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            if not prompts:
                raise ValueError("the prompt list is empty")
            prompt_embeds = self.encode_prompt(prompts)
        b = prompt_embeds.shape[0]
        if negative_prompt_embeds is None:
            negatives = [negative_prompt or ""] * b if not isinstance(negative_prompt, list) else negative_prompt
            if len(negatives) != b:
                raise ValueError(f"{len(negatives)} negative prompts for {b} prompts")
            negative_prompt_embeds = self.encode_prompt(negatives) if guidance_scale > 1.0 else prompt_embeds

        factor = self.vae_scale_factor
        if condition is not None:
            num_frames = condition.frames
            latent_size = tuple(int(s) for s in condition.latents.shape[-2:])
        else:
            height = height or self.config.default_size or self.unet.unet.config.sample_size * factor
            width = width or height
            if height % factor or width % factor:
                raise ValueError(f"height and width must be multiples of {factor}, got {height}x{width}")
            latent_size = (height // factor, width // factor)
        num_frames = num_frames or self.config.trained_frames or 8
        if num_frames < 1 or num_inference_steps < 1:
            raise ValueError("num_frames and num_inference_steps must be at least 1")
        if isinstance(decode_chunk_size, bool) or not isinstance(decode_chunk_size, int) or decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size (--decode-chunk) must be an integer of at least 1, "
                             f"got {decode_chunk_size!r}")
        fps = fps if fps is not None else self.config.default_fps
        if generator is None and seed is not None:
            generator = seed_generators(seed, b)

        prior = noise_prior or NoisePrior.from_dict(getattr(self.config, "noise_prior", None))

        def denoise(start: torch.Tensor | None, steps: int) -> torch.Tensor:  # -> clean latents (b, c, f, h, w)
            return denoise_video(
                self.unet, self.scheduler, prompt_embeds, negative_prompt_embeds, num_frames, latent_size, steps,
                guidance_scale, fps, generator, enable_time, progress=self.progress_bar, latents=start,
                window=window_size, overlap=window_overlap, shift_windows=shift_windows, condition=condition,
                condition_method=condition_method, eta=eta, graphs=self.cuda_graphs, noise_prior=prior)

        if self.free_init is None:
            latents = denoise(latents, num_inference_steps)
        else:  # the first noise drawn as denoise_video would draw it, so num_iters=1 samples the same video
            param = next(self.unet.parameters())
            shape = (b, self.unet.unet.config.in_channels, num_frames, *latent_size)
            first = latents if latents is not None else initial_noise(shape, generator, param.device, param.dtype, prior)
            fresh = lambda: initial_noise(shape, generator, param.device, torch.float32, prior)  # noqa: E731
            latents = sample_with_free_init(denoise, first, fresh, self.scheduler, num_inference_steps, self.free_init)
        frames = latents if kind == "latent" else self._postprocess(latents, kind, decode_chunk_size)
        self.maybe_free_model_hooks()
        return VideoPipelineOutput(frames=frames) if return_dict else (frames,)

    def _postprocess(self, latents: torch.Tensor, kind: str, decode_chunk_size: int) -> Any:
        video = decode_latents(self.vae, latents, decode_chunk_size)  # (b, f, 3, H, W) in [0, 1]
        if kind == "pt":
            return video
        array = video.permute(0, 1, 3, 4, 2).numpy()  # (b, f, H, W, 3)
        if kind == "np":
            return array
        return [[Image.fromarray((f * 255).round().astype(np.uint8)) for f in v] for v in array]

    # ------------------------------------------------------------------ known-frame modes
    def image_to_video(self, image: np.ndarray, prompt: str | list[str] = "", num_frames: int | None = None,
                       **kwargs: Any) -> VideoPipelineOutput | tuple[Any]:
        """Animate a still: image uint8 (H, W, 3) becomes frame 0 of `num_frames`."""
        frames = num_frames or self.config.trained_frames or 8
        condition = image_condition(self.encode_video(np.asarray(image)[None]), frames)
        return self(prompt, condition=condition, **kwargs)

    def extend(self, context: np.ndarray, prompt: str | list[str] = "", new_frames: int = 8,
               **kwargs: Any) -> VideoPipelineOutput | tuple[Any]:
        """Continue a video: context uint8 (n, H, W, 3) (its last frames) -> n + new_frames frames."""
        condition = extension_condition(self.encode_video(context), new_frames)
        return self(prompt, condition=condition, **kwargs)

    def interpolate(self, video: np.ndarray, factor: int, prompt: str | list[str] = "",
                    **kwargs: Any) -> VideoPipelineOutput | tuple[Any]:
        """Raise the frame rate k times: uint8 (n, H, W, 3) -> (n - 1) * factor + 1 frames.

        Pass fps= the output rate (source fps * factor) for an fps-conditioned model.
        """
        check_factor(factor)
        condition = interpolation_condition(self.encode_video(video), factor)
        kwargs.setdefault("guidance_scale", 1.0)
        return self(prompt, condition=condition, **kwargs)
