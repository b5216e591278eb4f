"""Choices, thresholds and defaults shared by the CLI and the stages, without importing torch (`--help` stays fast)."""

# `--gradient-checkpointing` levels, least recomputation (and most memory) first (VideoUNet.set_gradient_checkpointing)
GRADIENT_CHECKPOINTING = ("none", "temporal", "light-1", "light-1+1", "light-1+2", "light-1+3", "light-1+4",
                          "selective-1", "light-2", "selective-2", "selective", "attention", "blocks", "full")
# the levels `train --help` lists (every level is accepted; `train --help-all` lists them all)
GRADIENT_CHECKPOINTING_COMMON = ("none", "temporal", "selective", "attention", "blocks", "full")
COMPILE_REGIONS = ("layers", "blocks")  # what one compiled region is (VideoUNet.compile_regions)
# `--compile auto` compiles on a CUDA GPU for runs of at least this many steps. At the SD 1.5 size,
# compiling takes a couple of minutes and saves about 0.17 s of each 2 x 16-frame step at 512 px
# (BENCHMARKS.md): repaid within the first thousand steps there, later for smaller clips, whose steps
# gain less while compiling takes as long.
COMPILE_MIN_STEPS = 1_000
# `--compile auto` (and `on`) compile whole UNet blocks for runs of at least this many steps: their
# compile takes over a minute longer than the layers' and saves only a few percent of a step
# (BENCHMARKS.md), so it is repaid after several thousand steps; shorter runs compile layers.
BLOCK_REGIONS_MIN_STEPS = 10_000
# `train --compile`: auto, on (regions by the run's length), off, or the region to compile (a resolved config
# holds off, layers or blocks)
COMPILE_CHOICES = ("auto", "on", "off", *COMPILE_REGIONS)
LR_SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("auto", "adamw", "adamw8bit")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
TEMPORAL_LAYERS = ("pseudo3d", "animatediff")  # the temporal layers' designs (VideoUNet's temporal_layers)
TASKS = ("none", "interpolate", "extend", "image2video", "mixed")  # masked-frame conditioning (frame_masks.py)

PREPARE_BATCH_SIZE = 32  # frames per VAE batch in `prepare` (the CLI's default and prepare()'s)
# `sdvideo export --format`: what a run's weights are written as (sdvideo/export/: one module per format)
EXPORT_FORMATS = ("temporal", "animatediff", "lora")
EXPORT_DTYPES = ("fp16", "bf16", "fp32")  # `sdvideo export --dtype`: the stored weights' precision
