"""Does this tree compile the video UNet to the same graphs as an earlier commit? (CPU, no GPU needed.)

    python bench/compare_compiled_graphs.py ea618bd          # training and sampling, this tree against ea618bd

For a change that should move code without changing what runs (fast paths moved, options regenerated), this
checks it op for op: each tree builds the tiny pseudo-3D VideoUNet (`preset("tiny")`) and compiles it with
inductor as `sdvideo train` / `sample --compile` set it up, through a Dynamo backend that records the code of every
graph and sub-graph (checkpointed regions included):
- train: frozen spatial weights in bf16, `light-1+2` checkpointing, block regions, 2 x 8 frames at 16 x 16
  latents, bf16 autocast, forward and backward (`enable_fast_training()` where the tree has it);
- sample: bf16, layer regions, the guidance pair (`enable_fast_inference()` where the tree has it).
Each graph line is reduced to its operation (variable names dropped, ops, attributes and constants kept), and the
two op sequences are compared. CUDA-only paths (Triton kernels, CUDA graphs, cuDNN benchmarking) are not covered.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"(?<![.\w])(?!torch\b|None\b|True\b|False\b)[A-Za-z_]\w*")  # a variable, not an attribute


def dump_graphs(mode: str, path: str) -> None:
    """In a child process whose PYTHONPATH is the tree under test: compile, write every graph's code to `path`."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch._inductor.compile_fx import compile_fx

    from sdvideo.models.presets import preset
    from sdvideo.models.video_unet import inflate

    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm.code)
        graphs.extend(sub.code for sub in gm.modules() if sub is not gm and hasattr(sub, "code"))
        return compile_fx(gm, example_inputs)

    torch.manual_seed(0)
    cfg = preset("tiny")["unet"]
    video = inflate(UNet2DConditionModel(**cfg))
    text = torch.randn(2, 7, cfg["cross_attention_dim"])
    fps = torch.full((2,), 10.0)
    if mode == "train":
        if hasattr(video, "enable_fast_training"):
            video.enable_fast_training()
        video.freeze_spatial()
        temporal = {id(p) for p in video.temporal_parameters()}
        for p in video.parameters():
            if id(p) not in temporal:
                p.data = p.data.to(torch.bfloat16)
        video.set_gradient_checkpointing("light-1+2")
        video.train()
        video.compile_regions(regions="blocks", backend=backend)
        x = torch.randn(2, 4, 8, 16, 16)  # (batch, channels, frames, height, width)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = video(x, torch.tensor([500, 20]), text, fps=fps).sample
        out.float().square().mean().backward()
    else:
        if hasattr(video, "enable_fast_inference"):
            video.enable_fast_inference()
        video.eval().to(torch.bfloat16)
        video.compile_regions(backend=backend)
        x = torch.randn(2, 4, 8, 16, 16, dtype=torch.bfloat16)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            video(x, torch.tensor([500, 500]), text.bfloat16(), fps=fps, guidance_pair=True)
    Path(path).write_text("\n#####\n".join(graphs))


def operations(code: str) -> list[str]:
    """Each graph line's operation with its variables renamed V; aliases, deletions and signatures dropped."""
    ops = []
    for line in code.splitlines():
        line = re.sub(r"#.*", "", line).strip()  # comments, and the ##### between graphs
        if " = " not in line or line.startswith("def "):
            continue
        rhs = NAME.sub("V", line.split(";")[0].split(" = ", 1)[1]).strip()
        if rhs not in ("V", "None"):
            ops.append(rhs)
    return ops


def graphs_of(src: Path, mode: str, work: Path) -> tuple[int, list[str]]:
    out = work / f"{src.parent.name}-{mode}.txt"
    env = dict(os.environ, PYTHONPATH=str(src))
    subprocess.run([sys.executable, __file__, "--child", mode, str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    code = out.read_text()
    return code.count("\n#####\n") + 1, operations(code)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("commit", nargs="?", help="the commit to compare this tree with")
    p.add_argument("--modes", default="train,sample")
    p.add_argument("--child", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return dump_graphs(*args.child)
    if not args.commit:
        p.error("give the commit to compare this tree with, e.g. ea618bd")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old = work / args.commit
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.commit, "src"], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        for mode in args.modes.split(","):
            n_old, ops_old = graphs_of(old / "src", mode, work)
            n_new, ops_new = graphs_of(ROOT / "src", mode, work)
            removed, added = collections.Counter(), collections.Counter()
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ops_old, ops_new, autojunk=False).get_opcodes():
                if tag != "equal":
                    removed.update(ops_old[i1:i2])
                    added.update(ops_new[j1:j2])
            verdict = "identical op for op" if ops_old == ops_new else \
                f"{sum(removed.values())} ops only at {args.commit}, {sum(added.values())} only here"
            print(f"{mode}: {n_old} graphs, {len(ops_old)} ops at {args.commit}; {n_new} graphs, {len(ops_new)} ops "
                  f"here: {verdict}")
            for sign, counter in (("-", removed), ("+", added)):
                for op, count in counter.most_common(8):
                    print(f"  {sign} {count} x {op[:140]}")


if __name__ == "__main__":
    main()
