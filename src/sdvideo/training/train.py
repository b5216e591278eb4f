"""Train the temporal layers of an inflated Stable Diffusion UNet on cached video latents.

`train(config)` reads top to bottom: load the base and the cache, inflate, freeze, (resume), train,
validate, sample, checkpoint, save. The VAE and text encoder only serve validation samples: videos and
captions were turned into latents and embeddings by `sdvideo prepare` (the original recipe's main
memory saving).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType
from diffusers.optimization import get_scheduler
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from ..atomic_files import atomic_dir
from ..fast.cudnn_benchmark import benchmark_cudnn_algorithms
from ..data.cache import check_cache_matches_identity
from ..data.dataset import empty_text_embedding, load_cache_info
from ..models.base import load_base
from ..models.motion_module_file import load_motion_file
from ..models.video_unet import VideoUNet, inflate
from ..run_identity import absolute, base_identity, base_record, cache_fingerprint
from ..run_lock import exclusive
from .allocator import prefer_expandable_segments
from .batches import training_batches, validation_sets
from .best_model import best_so_far, save_best
from .checkpoint import (
    intact_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_rng_states,
    read_state,
    save_checkpoint,
    set_aside,
)
from .config import TrainConfig, auto_choices
from .diffusion_loss import diffusion_loss
from .dry_run import auto_checkpointing, memory_warning, resolve_checkpointing
from .ema import EMA
from .frame_masks import condition_channels_for, make_frame_condition
from .init_temporal import load_initial_temporal
from .lora import LORA_FILE, STARTING_POINTS, add_temporal_lora, has_lora, merge_lora, save_lora
from .loss_plot import write_loss_plot, write_validation_plot
from .optim import make_optimizer, resolve_optimizer
from .progress_samples import write_progress_samples
from .resume import frozen_added_fingerprint, refusal, resume_changes, resumed_record, starting_point_refusal
from .validation import Validator, append_validation_rows, trim_validation_rows


def build_video_unet(config: TrainConfig, base=None) -> tuple[VideoUNet, Any]:
    """The base's UNet inflated with the configured temporal layers (trainable set applied), and the base."""
    base = base or load_base(config.base)
    if config.gradient_checkpointing == "auto":  # train() and --dry-run resolve it first, to record the level
        config = resolve_checkpointing(config, base.unet.config, load_cache_info(config.data)["latent_shape"][-1])
    # --task: extra input channels for known frames' latents + mask (zero-initialised, so the model
    # starts as the plain one); they are new layers and train with the temporal ones.
    channels = condition_channels_for(config.task, base.unet.config.in_channels)
    video = inflate(base.unet, **config.temporal, condition_channels=channels)
    if config.init_temporal:  # trained temporal layers to start from (checked against these)
        load_initial_temporal(video, config.init_temporal, where=str(config.base))
    if config.init_motion:  # AnimateDiff motion modules to start from (checked against the base's UNet)
        load_motion_file(video, config.init_motion)
    video.enable_fast_training()  # lean frozen convolutions, subpixel upsamplers, fused temporal attention
    if config.train != "all":
        video.freeze_spatial()
        if channels:
            video.frame_conditioning.requires_grad_(True)
        extra = config.train.partition("+")[2]
        for name in filter(None, extra.split(",")):
            modules = [m for n, m in video.unet.named_modules() if n == name or n.endswith("." + name)]
            if not modules:
                raise ValueError(f"--train {config.train}: no module named {name!r} in the UNet")
            for module in modules:
                module.requires_grad_(True)
    if config.lora_rank:  # only LoRA adapters on the temporal layers train (`lora.py`)
        add_temporal_lora(video, config.lora_rank, config.lora_alpha)
    video.set_gradient_checkpointing(config.gradient_checkpointing)
    return video, base


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train into `config.out`: checkpoints/, unet/ (final model), config.json, loss.csv, loss.png, logs/ and,
    with validation, validation.csv and validation.png; with --lora-rank, lora.safetensors (the adapters alone;
    unet/ holds them merged, `lora.py`).

    One writer per run folder: the main process holds `out/.lock` (`run_lock.py`) from before anything is
    loaded to the end, so a second `train` on the same --out is refused at once."""
    if config.device != "cpu":  # before anything starts CUDA (resolved() may): long clips fragment the allocator
        prefer_expandable_segments()
    cfg = config.resolved()
    out = Path(cfg.out)
    _check_out_is_not_base(out, cfg.base)  # before the lock, which would write into the base's folder
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, cpu=cfg.device == "cpu", gradient_accumulation_steps=cfg.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )
    with exclusive(out, "sdvideo train") if accelerator.is_main_process else contextlib.nullcontext():
        return _train(cfg, out, accelerator, progress, given=config)


def _check_out_is_not_base(out: Path, base: str | Path) -> None:
    """Refuse an --out that is the base model's folder or inside it (resolved paths): the run's unet/ and
    config.json would replace the base's own."""
    base_dir = Path(base).expanduser()
    if not base_dir.is_dir():  # a single-file base (or a missing one, which load_base reports)
        return
    where, base_dir = out.expanduser().resolve(), base_dir.resolve()
    if where == base_dir:
        raise ValueError(f"--out {out} is the base model's folder; choose another --out for the run")
    if base_dir in where.parents:
        raise ValueError(f"--out {out} is inside the base model's folder {base}; choose another --out for the run")


def _train(cfg: TrainConfig, out: Path, accelerator: Accelerator, progress: bool,
           given: TrainConfig | None = None) -> dict[str, Any]:
    """`train` with `cfg` resolved (from `given`, whose auto choices it prints) and, on the main process,
    `out` locked."""
    # absolute paths: config.json and the checkpoints name them for any working folder (`run_identity.py`)
    cfg = dataclasses.replace(cfg, base=absolute(cfg.base), data=absolute(cfg.data),
                              val_data=[absolute(v) for v in cfg.val_data],
                              init_temporal=absolute(cfg.init_temporal) if cfg.init_temporal else None,
                              init_motion=absolute(cfg.init_motion) if cfg.init_motion else None)
    existing = latest_checkpoint(out)
    resume_from, damaged = None, []
    if cfg.resume and existing is not None:  # the newest checkpoint whose files match their manifest (every rank
        # checks for itself: the same answer, no collective)
        resume_from, damaged = intact_checkpoint(out)
        if resume_from is None:
            raise ValueError(f"{out / 'checkpoints'}: no intact checkpoint to resume from (newest {damaged[0][0].name}: "
                             f"{damaged[0][1]}); delete the damaged checkpoint folders or choose a new --out")
    if not cfg.resume and existing is not None:
        raise ValueError(f"{out} already holds checkpoints; pass --resume to continue it or choose a new --out")
    # A finished model with no checkpoint to continue from: starting over would replace unet/ and loss.csv.
    # (`unet.old`: atomic_dir's copy of unet/ while it is being replaced, restored if that was cut short.)
    if existing is None and any((out / name).is_dir() for name in ("unet", "unet.old")):
        raise ValueError(f"{out} already holds a finished model (unet/); choose a new --out or delete it")
    accelerator.wait_for_everyone()  # every rank has looked at `out` before the main one writes to it
    if damaged and accelerator.is_main_process:  # set aside: not resumed from again, not counted as kept
        for path, _ in damaged:
            set_aside(path)
        print("; ".join(f"checkpoint {path} is damaged ({why})" for path, why in damaged)
              + f"; resuming from {resume_from} (the damaged ones moved to <name>.damaged)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    # ---- data: cached latents (already scaled by the VAE's factor) and caption embeddings
    cache = load_cache_info(cfg.data)
    base = load_base(cfg.base)
    _check_cache(cfg, cache, base)
    identity, fingerprint = base_identity(base), cache_fingerprint(cache)  # before inflating touches the base
    saved = read_state(resume_from) if resume_from is not None else None
    if saved is not None:  # refuse options that define the run (`resume.py`)
        refused, _ = resume_changes(saved, cfg.to_dict(), identity, fingerprint)
        if refused:
            raise ValueError(refusal(out, resume_from, refused))
    for extra in cfg.val_data:  # --val-data: unseen videos, prepared with the same base
        _check_cache(dataclasses.replace(cfg, data=extra), load_cache_info(extra), base)
    batches = training_batches(cfg, accelerator.process_index, accelerator.num_processes)
    empty_text = empty_text_embedding(cfg.data).to(accelerator.device)  # (77, dim): caption dropout

    # ---- model: only the temporal layers train unless --train says more
    estimate = None  # auto's level's estimated peak (it fits: the warning below need not trace it again)
    if cfg.gradient_checkpointing == "auto":  # the fastest level whose estimate fits this GPU (none on the CPU)
        level, estimate = auto_checkpointing(cfg, base.unet.config, cache["latent_shape"][-1])
        cfg = dataclasses.replace(cfg, gradient_checkpointing=level)
    chosen = auto_choices(given, cfg) if given is not None else ""
    if chosen and accelerator.is_main_process:  # what auto chose (config.json records it too)
        print(chosen, flush=True)
    video, base = build_video_unet(cfg, base)
    frozen_added = frozen_added_fingerprint(video)  # not in checkpoints: a resume must build the same (LoRA)
    if saved is not None:
        refused_start = starting_point_refusal(out, resume_from, saved, cfg.to_dict(), frozen_added)
        if refused_start:
            raise ValueError(refused_start)
    if cfg.temporal.get("temporal_layers") == "animatediff" and video.config.fps_conditioning \
            and accelerator.is_main_process:  # before hours of training, not at export
        print("note: the fps embedding trains too; `sdvideo export --format animatediff|lora` will refuse this run "
              "(AnimateDiff has no fps input); --no-fps-conditioning keeps it exportable", flush=True)
    if accelerator.device.type == "cuda" and accelerator.is_main_process:  # say so before running out of memory
        advice = memory_warning(cfg, video.unet.config, cache["latent_shape"][-1], estimate_gib=estimate)
        if advice:
            warnings.warn(advice, stacklevel=2)
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if accelerator.device.type == "cuda" and cfg.mixed_precision in ("fp16", "bf16") and not sharded:
        # Frozen weights in half precision: no fp32 copy, no per-step casts. Trainable stay fp32.
        half = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float16
        temporal = {id(p) for p in video.temporal_parameters()}  # frozen under LoRA: kept fp32, merged at the end
        for p in video.parameters():
            if not p.requires_grad and id(p) not in temporal:
                p.data = p.data.to(half)
    trainable = [p for p in video.parameters() if p.requires_grad]
    optimizer, optimizer_name = make_optimizer(
        trainable, resolve_optimizer(cfg.optimizer, accelerator.device.type), cfg.lr, cfg.weight_decay,
        accelerator.device.type,
    )
    lr_schedule = get_scheduler(
        cfg.lr_schedule if cfg.lr_schedule != "constant" else "constant_with_warmup", optimizer,
        num_warmup_steps=cfg.warmup_steps, num_training_steps=max(1, cfg.steps),
    )
    video.to(accelerator.device)
    benchmark_cudnn_algorithms(accelerator.device)  # the same batch shapes every step
    if cfg.compile != "off":  # resolved: off, layers or blocks
        accelerator.print(f"compiling the UNet's {cfg.compile} (torch.compile): the first steps take minutes at "
                          "the SD size (--compile off runs eagerly)")
        video.compile_regions(regions=cfg.compile)  # after the move and dtype changes: code is specialised to them
    ema = EMA(video, cfg.ema_decay) if cfg.ema_decay > 0 else None

    # ---- resume: weights, optimizer, EMA, LR schedule, RNG, data position and loss history
    step, consumed, history = 0, 0, []
    generator = torch.Generator(device=accelerator.device).manual_seed(cfg.seed + 1000 * accelerator.process_index)
    dropout_rng = torch.Generator().manual_seed(cfg.seed + 1 + 1000 * accelerator.process_index)
    if resume_from is not None:
        state, ema_tensors = load_checkpoint(resume_from, video, optimizer, accelerator.device)
        lr_schedule.load_state_dict(state["lr_schedule"])
        step, consumed, history = state["step"], state["consumed"], [tuple(h) for h in state["history"]]
        if ema is not None and ema_tensors is not None:
            ema.load_state_dict(ema_tensors, step)
        rng = load_rng_states(resume_from, accelerator.process_index)
        if rng is not None:
            generator.set_state(rng["noise"].to(generator.get_state().device))
            dropout_rng.set_state(rng["dropout"])
        accelerator.print(f"resumed from {resume_from} at step {step}")

    video, optimizer = accelerator.prepare(video, optimizer)
    model = accelerator.unwrap_model(video)
    accelerator.print(model.format_parameter_summary() + f"; optimizer {optimizer_name}")
    noise_schedule, noise_prior = base.scheduler, cfg.noise_prior()
    validators: dict[str, Validator] = {}
    if cfg.val_every and accelerator.is_main_process:
        # at the training batch size: what fits a training step fits a no-grad forward
        validators = {name: Validator(clips, clips=cfg.val_clips, name=name, batch_size=cfg.batch_size,
                                      noise_prior=cfg.noise_prior())
                      for name, clips in validation_sets(cfg).items()}
        trim_validation_rows(out / "validation.csv", step)  # rows after the checkpoint resumed from come again
    best_val = best_so_far(out) if resume_from is not None else math.inf  # --keep-best
    prompts = base.encode_text(cfg.sample_prompts) if cfg.sample_prompts and accelerator.is_main_process else None
    if accelerator.is_main_process:  # one writer: ranks sharing `out` would race on the rename
        trained_fps = [cache["fps"] / s for s in cfg.strides]  # the rates the fps embedding saw
        record = base_record(cfg.base, identity, out)  # where the base is and what it was (`run_identity.py`)
        if saved is not None:  # the options this resume changed (those that may change)
            record["resumed"] = resumed_record(out, saved["step"], resume_from,
                                               resume_changes(saved, cfg.to_dict(), identity, fingerprint)[1])
        cfg.save(out / "config.json", cache_fps=cache["fps"], trained_fps=trained_fps, cache_size=cache["size"],
                 latent_shape=cache["latent_shape"], data_fingerprint=fingerprint,
                 optimizer_built=optimizer_name, processes=accelerator.num_processes, **record)
    writer = SummaryWriter(str(out / "logs")) if accelerator.is_main_process else None

    def checkpoint() -> None:
        rng = {"noise": generator.get_state().cpu(), "dropout": dropout_rng.get_state()}
        all_rng = accelerator.gather_for_metrics([rng], use_gather_object=True) if accelerator.num_processes > 1 else [rng]
        if accelerator.is_main_process:
            save_checkpoint(
                out, step, model, optimizer,
                dict(consumed=consumed, history=history, lr_schedule=lr_schedule.state_dict(), config=cfg.to_dict(),
                     base_identity=identity, data_fingerprint=fingerprint, frozen_added_fingerprint=frozen_added),
                ema.state_dict() if ema else None, dict(enumerate(all_rng)), keep=cfg.keep_checkpoints,
            )
        accelerator.wait_for_everyone()

    # ---- the loop: one optimizer step per `grad_accum` batches
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and accelerator.is_main_process))
    started, bad_steps, step_loss = time.time(), 0, []
    video.train()
    for batch in batches(consumed):
        if step >= cfg.steps:
            break
        consumed += 1
        latents = batch["latents"].to(accelerator.device, non_blocking=True)  # (b, c, frames, h, w)
        text = batch["text"].to(accelerator.device, non_blocking=True)  # (b, 77, dim)
        drop = (torch.rand(text.shape[0], generator=dropout_rng) < cfg.caption_dropout).to(text.device)
        text = torch.where(drop[:, None, None], empty_text.to(text.dtype), text)
        fps = batch["fps"].to(accelerator.device)
        enable_time = not bool(batch.get("is_image", False))  # images pass with temporal layers off
        # --task: (b, c + 1, frames, h, w) known frames' clean latents + mask, drawn per clip
        known = make_frame_condition(latents, cfg.task, generator) if cfg.task != "none" else None

        with accelerator.accumulate(video), accelerator.autocast():
            loss = diffusion_loss(
                lambda noisy, t: video(noisy, t, text, fps=fps, enable_time=enable_time, conditioning=known).sample,
                noise_schedule, latents, generator, offset_noise=cfg.offset_noise, min_snr_gamma=cfg.min_snr_gamma,
                noise_prior=noise_prior,
            )
            losses = accelerator.gather(loss.detach()[None])  # (processes,): one collective per batch
            finite = bool(torch.isfinite(losses).all())
            if finite:
                # Image batches run with the temporal layers (and fps embedding) off: when only those
                # train, such a batch has nothing to learn and its loss no gradient.
                if loss.requires_grad:
                    accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.grad_clip > 0:
                    accelerator.clip_grad_norm_(trainable, cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            else:  # skip: no update from a NaN/inf loss; several in a row stop the run
                optimizer.zero_grad(set_to_none=True)
        step_loss.append(losses.mean().item() if finite else float("nan"))
        if not accelerator.sync_gradients:
            continue

        value = sum(step_loss) / len(step_loss)
        step_loss = []
        if not math.isfinite(value):
            bad_steps += 1
            warnings.warn(f"step {step + 1}: loss is {value}; skipped the update ({bad_steps} in a row)", stacklevel=1)
            if bad_steps >= cfg.max_bad_steps:
                last = intact_checkpoint(out)[0]  # verified against its manifest
                raise FloatingPointError(
                    f"{bad_steps} non-finite losses in a row at step {step + 1}; stopped. Last good checkpoint: "
                    f"{last or 'none'}. Resume with --mixed-precision bf16/no, train a new --out with a lower --lr, "
                    "or check the cache for bad latents"
                )
            continue
        bad_steps = 0
        step += 1
        lr_schedule.step()
        if ema is not None:
            ema.update(model)
        history.append((step, value))
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr_schedule.get_last_lr()[0]:.2e}")
        if writer is not None and step % cfg.log_every == 0:
            writer.add_scalar("train/loss", value, step)
            writer.add_scalar("train/lr", lr_schedule.get_last_lr()[0], step)
            writer.add_scalar("train/steps_per_second", (step - (history[0][0] - 1)) / (time.time() - started), step)
        if validators and step % cfg.val_every == 0:
            every = {name: v(model, noise_schedule, accelerator.device, accelerator.autocast)
                     for name, v in validators.items()}
            for name, scores in every.items():
                for key, val in scores.items():
                    writer.add_scalar(f"val/{name}/{key}", val, step)
            append_validation_rows(out / "validation.csv", step, every)
            bar.write(f"step {step}: validation loss, video / frames independent: " + "; ".join(
                f"{name} {s['video']:.4f} / {s['independent']:.4f}" for name, s in every.items()))
            scores = every["held-out"]
            if cfg.keep_best and scores["video"] < best_val:
                best_val = scores["video"]
                save_best(model, out, step, scores)
        if prompts is not None and step % cfg.sample_every == 0:
            write_progress_samples(model, base, prompts, cfg, cache, out / "samples" / f"step-{step:07d}", writer, step)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            checkpoint()
    bar.close()

    # ---- save: the video UNet (EMA weights when EMA is on), the loss history and its plot
    accelerator.wait_for_everyone()
    if ema is not None:  # every process, so that all return the same model
        ema.copy_to(model)
    summary = model.format_parameter_summary()  # as trained (before LoRA adapters are merged away)
    if has_lora(model):  # RUN/lora.safetensors: the adapters alone; RUN/unet/: merged, a plain video UNet
        if accelerator.is_main_process:
            save_lora(model, out / LORA_FILE, base=Path(str(cfg.base)).name,
                      **{name: Path(str(getattr(cfg, name))).name for name in STARTING_POINTS if getattr(cfg, name, None)})
        merge_lora(model.to(torch.float32))  # every process: all return the same model
    if accelerator.is_main_process:
        with atomic_dir(out / "unet") as tmp:
            model.to(torch.float32).save_pretrained(tmp)
        with open(out / "loss.csv", "w", newline="") as f:
            csv.writer(f).writerows([("step", "loss"), *history])
        if history:
            write_loss_plot(*zip(*history), out / "loss.png", title="video training loss (temporal layers)")
        if (out / "validation.csv").exists():
            write_validation_plot(out / "validation.csv", out / "validation.png")
        writer.close()
    return dict(steps=step, seconds=time.time() - started, final_loss=history[-1][1] if history else None,
                parameters=summary, run=str(out), history=history, model=model)


def _check_cache(cfg: TrainConfig, cache: dict[str, Any], base) -> None:
    """Refuse a cache made with another base model (its latents would mean something else)."""
    check_cache_matches_identity(cache, base.identity(), str(cfg.data))  # `cache`: already-read cache info
    if base.unet.config.in_channels != cache["latent_shape"][0]:
        raise ValueError(
            f"{cfg.data}: cached latents have {cache['latent_shape'][0]} channels but the base UNet takes "
            f"{base.unet.config.in_channels}; prepare the cache with the same --base"
        )
