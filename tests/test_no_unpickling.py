"""Nothing in a run, cache or base folder is unpickled: a pickle payload planted under every file name a
loader might look for (and in place of the files that are there) never runs, through resuming, sampling,
interpolating, evaluating or loading a base; and checkpoints keep the optimizer state exactly in
safetensors + JSON."""

import copy
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

import media
from sdvideo.cli import main
from sdvideo.models.base import BaseModelError, load_base
from sdvideo.sampling.pipeline import load_video_unet
from sdvideo.training.adamw8bit import AdamW8bit
from sdvideo.training.checkpoint import checkpoint_dirs, load_checkpoint, read_state, save_checkpoint
from sdvideo.training.config import TrainConfig
from sdvideo.training.train import train

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol")]  # torch.load refusing the bare pickles

SRC = Path(__file__).resolve().parents[1] / "src" / "sdvideo"
COMMON = ["--steps", "1", "--device", "cpu"]

# What a loader might look for in a run, its checkpoints, the base and the cache, beside what is there.
PICKLE_NAMES = ["optimizer.pt", "optimizer.pkl", "optimizer.bin", "trainable.pt", "ema.pt", "rng-rank0.pt",
                "state.pt", "checkpoint.pt", "pytorch_model.bin", "diffusion_pytorch_model.bin", "model.ckpt",
                "model.pt", "model.pth", "scheduler.pt", "random_states_0.pkl", "training_args.bin"]
BASE_PICKLES = ["unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.bin", "text_encoder/pytorch_model.bin",
                "unet/diffusion_pytorch_model.fp16.bin", "text_encoder/pytorch_model.fp16.bin",
                "tokenizer/pytorch_model.bin", "scheduler/scheduler.pt", "model.ckpt", "base.pt"]
CACHE_PICKLES = ["latents.pt", "text.pt", "text.bin", "cache.pkl", "videos.pkl", "latents/shard-00000.pt",
                 "latents/index.pkl"]


class Payload:
    """Unpickled, it creates `marker` (what a crafted pickle could do with any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",)


def plant(path: Path, marker: Path, raw: bool = False) -> Path:
    """A pickle whose loading runs the payload: torch.save's zip (what torch.load reads) or a bare pickle,
    holding tensors too, as a real state dict would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"state_dict": {"weight": torch.zeros(2)}, "payload": Payload(marker)}
    if raw:
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD-RAN"
    yield path
    assert not path.exists(), "a planted pickle ran its payload"


def test_the_payload_runs_when_unpickled(tmp_path):
    # The planted files are real exploits: loaded unsafely, they run.
    ran = tmp_path / "ran"
    torch.load(plant(tmp_path / "a.pt", ran), weights_only=False)
    assert ran.exists()
    ran.unlink()
    pickle.loads(plant(tmp_path / "b.pkl", ran, raw=True).read_bytes())
    assert ran.exists()


def test_no_unsafe_loader_in_the_package():
    # Every torch.load passes weights_only=True; no pickle, marshal, eval, exec or unsafe YAML anywhere in src/.
    unsafe = re.compile(r"\bimport (pickle|dill|marshal|shelve|joblib|cloudpickle)\b|\bpickle\.|\bmarshal\.|"
                        r"\byaml\.(load|unsafe_load|full_load)\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False|"
                        r"(?<![.\w])(eval|exec)\(")
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        found += [f"{path.name}: {m.group(0)}" for m in unsafe.finditer(text)]
        for call in re.finditer(r"torch\.load\(", text):
            arguments = _call_arguments(text, call.end())
            if not re.search(r"\bweights_only\s*=\s*True\b", arguments):
                found.append(f"{path.name}: torch.load({arguments})")
    assert not found, found


def _call_arguments(text: str, start: int) -> str:
    """The text between the parenthesis before `start` and its matching closing one."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return text[start:]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_base_dir, tiny_cache):
    """Copies of the tiny base and cache, and a 2-step run trained on them with a checkpoint at step 2."""
    root = tmp_path_factory.mktemp("no-unpickling")
    base, cache, run = root / "base", root / "cache", root / "run"
    shutil.copytree(tiny_base_dir, base)
    shutil.copytree(tiny_cache, cache)
    cfg = TrainConfig(data=str(cache), base=str(base), out=str(run), frames=3, batch_size=2, steps=2, device="cpu",
                      lr=1e-3, checkpoint_every=2, log_every=1)
    train(cfg, progress=False)
    return base, cache, run


@pytest.fixture
def unpickling(monkeypatch):
    """Every torch.load / pickle.load(s) call made while the test runs (the arguments' first item)."""
    calls = []
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, str(args[0])[:200] if args else ""))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


def test_planted_pickles_never_run(folders, tmp_path, marker, unpickling):
    base0, cache0, run0 = folders
    base, cache, run = tmp_path / "base", tmp_path / "cache", tmp_path / "run"
    shutil.copytree(base0, base)
    shutil.copytree(cache0, cache)
    shutil.copytree(run0, run)
    config = (run / "config.json").read_text().replace(str(base0), str(base)).replace(str(cache0), str(cache))
    (run / "config.json").write_text(config)
    (checkpoint,) = checkpoint_dirs(run)
    for folder in (checkpoint, run, run / "unet", run / "checkpoints"):
        for i, name in enumerate(PICKLE_NAMES):
            plant(folder / name, marker, raw=i % 3 == 2)
    for i, name in enumerate(BASE_PICKLES):
        plant(base / name, marker, raw=i % 3 == 2)
    for i, name in enumerate(CACHE_PICKLES):
        plant(cache / name, marker, raw=i % 3 == 2)

    # resume: two more steps from the checkpoint (its optimizer.pt beside optimizer.safetensors is never opened)
    assert main(["train", "--data", str(cache), "--base", str(base), "--out", str(run), "--frames", "3",
                 "--batch-size", "2", "--steps", "4", "--device", "cpu", "--lr", "1e-3", "--checkpoint-every", "2",
                 "--log-every", "1", "--resume"]) == 0
    assert [d.name for d in checkpoint_dirs(run)] == ["step-0000002", "step-0000004"]
    assert read_state(checkpoint_dirs(run)[-1])["step"] == 4
    # sample, interpolate and eval load the run's unet/ and the base it names
    assert main(["sample", "--run", str(run), "--prompt", "x", "--frames", "2", "--out", str(tmp_path / "s"),
                 *COMMON]) == 0
    clip = media.write_video(tmp_path / "clip.mp4", frames=2, fps=8, width=16, height=16, codec="libx264")
    assert main(["interpolate", str(clip), "--run", str(run), "--factor", "2", "--out", str(tmp_path / "x2.mp4"),
                 *COMMON]) == 0
    assert main(["eval", "--run", str(run), "--data", str(cache), "--out", str(tmp_path / "e"), "--samples", "1",
                 "--steps", "1", "--buckets", "1", "--clips", "1", "--frames", "2", "--device", "cpu"]) == 0
    # a saved pipeline folder, pickles beside each component's weights
    from sdvideo.sampling.pipeline import VideoPipeline

    saved = tmp_path / "saved"
    VideoPipeline.from_pretrained(run).save_pretrained(saved)
    for component in ("unet", "vae", "text_encoder", "scheduler", "tokenizer"):
        for i, name in enumerate(PICKLE_NAMES):
            plant(saved / component / name, marker, raw=i % 3 == 2)
    assert main(["sample", "--run", str(saved), "--prompt", "x", "--frames", "2", "--out", str(tmp_path / "p"),
                 *COMMON]) == 0
    # weights came from safetensors: nothing was even handed to an unpickler
    assert unpickling == []


def _trainable(run):
    """The run's model with only its temporal layers training, as `sdvideo train` has it, and an AdamW for them."""
    model = load_video_unet(run).freeze_spatial()
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)


def _fails_cleanly(load, *errors):
    """`load` raises (one of `errors`, when given); the `marker` fixture then checks the payload did not run."""
    with pytest.raises(errors or (Exception,)):
        load()


def test_pickles_in_place_of_the_files_never_run(folders, tmp_path, marker):
    # Each file a run, checkpoint or base holds, replaced by a pickle: loading fails, and nothing runs.
    base0, _, run0 = folders
    (checkpoint0,) = [d for d in checkpoint_dirs(run0) if d.name == "step-0000002"]
    model, optimizer = _trainable(run0)
    load_checkpoint(checkpoint0, model, optimizer, torch.device("cpu"))  # intact, it loads
    files = sorted(p.name for p in checkpoint0.iterdir())
    assert {"trainable.safetensors", "ema.safetensors", "optimizer.safetensors", "rng-rank0.safetensors",
            "state.json"} <= set(files)
    for f in files:
        checkpoint = tmp_path / "ck" / f / checkpoint0.name
        shutil.copytree(checkpoint0, checkpoint)
        plant(checkpoint / f, marker, raw=f.endswith(".json"))
        model, optimizer = _trainable(run0)
        if f.startswith("rng-"):  # read by its own function
            from sdvideo.training.checkpoint import load_rng_states

            _fails_cleanly(lambda: load_rng_states(checkpoint, 0))
        else:
            _fails_cleanly(lambda: load_checkpoint(checkpoint, model, optimizer, torch.device("cpu")))

    run = tmp_path / "run"
    shutil.copytree(run0, run)
    weights = run / "unet" / "diffusion_pytorch_model.safetensors"
    plant(weights, marker)
    _fails_cleanly(lambda: load_video_unet(run))
    weights.unlink()  # a pickle under the name diffusers falls back to: not loaded either
    plant(run / "unet" / "diffusion_pytorch_model.bin", marker)
    _fails_cleanly(lambda: load_video_unet(run))

    for component, name in (("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                            ("text_encoder", "model")):
        base = tmp_path / f"base-{component}"
        shutil.copytree(base0, base)
        plant(base / component / f"{name}.safetensors", marker)
        _fails_cleanly(lambda: load_base(base), BaseModelError)
        (base / component / f"{name}.safetensors").unlink()
        bin_name = "pytorch_model.bin" if component == "text_encoder" else f"{name}.bin"
        plant(base / component / bin_name, marker)  # only a pickle there: weights-only loading refuses it
        _fails_cleanly(lambda: load_base(base), BaseModelError)


def test_a_clip_folder_with_a_pickle_for_weights_never_runs_it(tmp_path, marker):
    from transformers import CLIPConfig

    from sdvideo.eval.clip_score import load_clip

    text = dict(vocab_size=514, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    CLIPConfig(text_config=text, vision_config=vision, projection_dim=16).save_pretrained(tmp_path / "clip")
    plant(tmp_path / "clip" / "pytorch_model.bin", marker)
    _fails_cleanly(lambda: load_clip(tmp_path / "clip"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth"])
def test_a_single_file_base_with_a_payload_is_refused(tmp_path, marker, suffix):
    path = plant(tmp_path / f"sd{suffix}", marker)
    with pytest.raises(BaseModelError, match="weights-only") as err:
        load_base(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    raw = plant(tmp_path / f"raw{suffix}", marker, raw=True)
    with pytest.raises(BaseModelError):
        load_base(raw)


def test_a_yaml_beside_a_checkpoint_cannot_build_objects(tmp_path, marker, base):
    from sdvideo.models.ldm_checkpoint import save_ldm_checkpoint

    path = save_ldm_checkpoint(base, tmp_path / "sd.safetensors")
    (tmp_path / "sd.yaml").write_text(
        f"model:\n  params: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(BaseModelError, match="YAML"):
        load_base(path)


def test_a_pickled_optimizer_state_is_refused_in_one_line(folders, tmp_path, marker):
    _, _, run0 = folders
    checkpoint = tmp_path / "step-0000002"
    shutil.copytree(checkpoint_dirs(run0)[0], checkpoint)
    (checkpoint / "optimizer.safetensors").unlink()
    plant(checkpoint / "optimizer.pt", marker)
    model, optimizer = _trainable(run0)
    with pytest.raises(ValueError) as err:
        load_checkpoint(checkpoint, model, optimizer, torch.device("cpu"))
    message = str(err.value)
    assert "\n" not in message and str(checkpoint / "optimizer.pt") in message
    assert "optimizer.safetensors" in message and "new run" in message


def _trained(make_optimizer, steps=2):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(80, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    optimizer = make_optimizer(model.parameters())
    for _ in range(steps):
        _step(model, optimizer)
    return model, optimizer


def _step(model, optimizer):
    x = torch.linspace(-1, 1, 4 * 80).view(4, 80)
    model(x).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return type(b) is torch.Tensor and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1),
    lambda params: AdamW8bit(params, lr=1e-2, weight_decay=0.1),
], ids=["adamw", "adamw8bit"])
def test_resume_restores_the_optimizer_state_exactly(tmp_path, make_optimizer):
    model, optimizer = _trained(make_optimizer)
    path = save_checkpoint(tmp_path, 2, model, optimizer, {}, None, {})
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "optimizer.safetensors", "state.json",
                                                      "trainable.safetensors"]
    fresh, fresh_optimizer = _trained(make_optimizer, steps=0)
    load_checkpoint(path, fresh, fresh_optimizer, torch.device("cpu"))
    saved, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert _same(saved["state"], restored["state"])  # tensors bit for bit, the 8-bit AdamW's step an int again
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in saved["param_groups"]]
    assert _same(groups, [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
                          for g in restored["param_groups"]])
    for _ in range(2):  # and training goes on as if never interrupted
        _step(model, optimizer)
        _step(fresh, fresh_optimizer)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    assert _same(copy.deepcopy(optimizer.state_dict())["state"], fresh_optimizer.state_dict()["state"])
