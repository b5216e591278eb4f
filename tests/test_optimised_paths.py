"""The speed and memory paths compute what the plain paths compute."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from sdvideo.models.lean_conv import LeanConv2d, make_convs_lean
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate


def _saved_bytes(fn) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


@pytest.mark.parametrize("stride,groups,bias", [(1, 1, True), (2, 1, False), (1, 4, True)])
def test_lean_conv_gives_the_same_input_gradient_and_saves_only_the_weight(stride, groups, bias) -> None:
    torch.manual_seed(0)
    plain = nn.Conv2d(8, 16, 3, stride=stride, padding=1, groups=groups, bias=bias).requires_grad_(False)
    lean = make_convs_lean(copy.deepcopy(plain))
    assert type(lean) is LeanConv2d
    x = torch.randn(2, 8, 9, 11, requires_grad=True)
    saved_plain, y_plain = _saved_bytes(lambda: plain(x))
    saved_lean, y_lean = _saved_bytes(lambda: lean(x))
    assert torch.equal(y_plain, y_lean)
    g = torch.randn_like(y_plain)
    (gx_plain,) = torch.autograd.grad(y_plain, x, g)
    (gx_lean,) = torch.autograd.grad(y_lean, x, g)
    torch.testing.assert_close(gx_lean, gx_plain, rtol=1e-6, atol=1e-6)
    assert saved_plain >= x.numel() * 4  # the plain conv keeps its input...
    assert saved_lean == lean.weight.numel() * 4  # ...the lean one only its weight


def test_lean_conv_trains_normally_when_its_weight_trains() -> None:
    conv = make_convs_lean(nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and x.grad is not None


def test_lean_conv_under_autocast_matches_plain() -> None:
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 8, 3, padding=1).requires_grad_(False)
    lean = make_convs_lean(copy.deepcopy(plain))
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_plain, y_lean = plain(x), lean(x)
    assert y_lean.dtype == y_plain.dtype == torch.bfloat16 and torch.equal(y_plain, y_lean)
    (gp,) = torch.autograd.grad(y_plain.float().sum(), x)
    (gl,) = torch.autograd.grad(y_lean.float().sum(), x)
    assert gl.dtype == torch.float32
    torch.testing.assert_close(gl, gp)


def _tiny_video_unet(fast_training: bool = True):
    """The tiny video UNet as `sdvideo train` builds it (`enable_fast_training`), or plain."""
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"]))
    if fast_training:
        video.enable_fast_training()
    video.freeze_spatial()
    for p in video.temporal_parameters():  # leave the identity init so temporal layers matter
        p.data.add_(0.05 * torch.randn_like(p))
    return video


def _step(video, x, t, text):
    out = video(x, t, text, fps=torch.tensor([8.0])).sample
    loss = out.square().mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in video.named_parameters() if p.grad is not None}
    video.zero_grad(set_to_none=True)
    return out.detach(), grads


def test_fast_training_convs_are_lean_and_whole_model_gradients_match_plain_convs() -> None:
    plain = _tiny_video_unet(fast_training=False)
    assert any(type(m) is nn.Conv2d for m in plain.modules()) and not any(type(m) is LeanConv2d for m in plain.modules())
    video = copy.deepcopy(plain).enable_fast_training(["lean-convs"])
    assert all(type(m) is not nn.Conv2d for m in video.modules())
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_lean, g_lean = _step(video, x, t, text)
    out_plain, g_plain = _step(plain, x, t, text)
    assert torch.equal(out_lean, out_plain) and g_lean.keys() == g_plain.keys() and g_lean
    for name in g_plain:
        torch.testing.assert_close(g_lean[name], g_plain[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("regions", ["layers", "blocks"])
def test_regional_compile_matches_eager(regions) -> None:
    # Two levels and one layer per block: every kind of compiled region, few shapes to compile.
    small = dict(preset("tiny")["unet"], block_out_channels=(32, 32), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**small)).enable_fast_training().freeze_spatial()  # as `train` builds it
    for p in video.temporal_parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    compiled = copy.deepcopy(video).compile_regions(regions=regions, backend="aot_eager")  # dynamo + AOTAutograd
    assert compiled.state_dict().keys() == video.state_dict().keys()
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_eager, g_eager = _step(video, x, t, text)
    out_comp, g_comp = _step(compiled, x, t, text)
    torch.testing.assert_close(out_comp, out_eager, rtol=1e-5, atol=1e-5)
    for name in g_eager:
        torch.testing.assert_close(g_comp[name], g_eager[name], rtol=1e-4, atol=1e-5)


def test_temporal_layers_keep_channels_last_and_match_nchw() -> None:
    from sdvideo.models.temporal_attention import TemporalTransformer
    from sdvideo.models.temporal_conv import TemporalConv

    torch.manual_seed(0)
    x = torch.randn(2 * 4, 64, 3, 5)
    conv, conv5, attn = TemporalConv(64), TemporalConv(64, kernel_size=5), TemporalTransformer(64, head_dim=32)
    for layer in (conv, conv5, attn):
        for p in layer.parameters():
            p.data.add_(0.1 * torch.randn_like(p))  # away from the identity initialisation
        plain = layer(x, 4)
        cl = layer(x.to(memory_format=torch.channels_last), 4)
        assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()
        assert plain.is_contiguous()
        torch.testing.assert_close(cl, plain, rtol=1e-5, atol=1e-5)


def test_channels_last_temporal_convolution_is_one_convolution_on_views() -> None:
    # Channels-last frames (batch, frames, h, w, c in memory) are a channels-last 3-D (batch, c, frames,
    # h, w) video: the temporal convolution runs as one convolution on views, with no copy in or out.
    from torch.utils._python_dispatch import TorchDispatchMode

    from sdvideo.models.temporal_conv import TemporalConv

    class RecordOps(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    conv, x = TemporalConv(16), torch.randn(2 * 4, 16, 5, 6).to(memory_format=torch.channels_last)
    with RecordOps() as recorded:
        y = conv(x, 4)
    assert [op for op in recorded.ops if op not in ("transpose", "view", "unsqueeze")] == ["convolution"]
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x)  # identity at init


def test_gradient_in_input_layout_is_an_identity_with_the_inputs_layout_in_backward() -> None:
    from sdvideo.models.layout import GradientInInputLayout

    cl, plain = torch.channels_last, torch.contiguous_format
    for layout, other in ((cl, plain), (plain, cl)):
        x = torch.randn(2, 8, 3, 5).contiguous(memory_format=layout).requires_grad_(True)
        y = GradientInInputLayout.apply(x)
        assert torch.equal(y, x)
        (grad,) = torch.autograd.grad(y, x, torch.randn(2, 8, 3, 5).contiguous(memory_format=other))
        assert grad.stride() == x.stride()


def test_compiled_transformer_regions_return_input_gradients_in_the_input_layout() -> None:
    # A spatial transformer's GroupNorm backward gives a plainly contiguous input gradient; the resnet
    # region before it expects its output gradient channels-last, so AOTAutograd copied it at the boundary.
    # (At 2 x 4 frames; at 1 x 3 the layouts happened to agree even without GradientInInputLayout.)
    from sdvideo.models.temporal_wrappers import SpatioTemporalTransformer

    video = _tiny_video_unet()
    video.set_gradient_checkpointing("selective")
    video.compile_regions(backend="aot_eager")  # channels-last
    layouts = []

    def record(module, args):
        x = args[0]
        if x.requires_grad:
            x.register_hook(lambda g, s=x.stride(): layouts.append((s, g.stride())))

    for m in video.modules():
        if isinstance(m, SpatioTemporalTransformer):
            m.register_forward_pre_hook(record)
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(2, 4, 4, 16, 16), torch.randn(2, 7, dim)
    video(x, torch.tensor([500, 20]), text, fps=torch.tensor([8.0, 8.0])).sample.square().mean().backward()
    assert layouts and all(grad == forward for forward, grad in layouts)


def test_channels_last_video_unet_stays_channels_last_and_matches() -> None:
    video = _tiny_video_unet()
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_plain, g_plain = _step(video, x, t, text)
    layouts = []
    cl = copy.deepcopy(video).to_channels_last()
    for module in cl.unet.modules():
        module.register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last))
                                     if torch.is_tensor(o) and o.ndim == 4 else None)
    out_cl, g_cl = _step(cl, x, t, text)  # plain input: channels-last weights make VideoUNet convert the frames
    assert layouts and all(layouts)  # no layer hands NCHW to the next (each would convert back)
    torch.testing.assert_close(out_cl, out_plain, rtol=1e-5, atol=1e-5)
    for name in g_plain:
        torch.testing.assert_close(g_cl[name], g_plain[name], rtol=1e-4, atol=1e-5)


def test_compile_regions_compiles_static_shapes_unless_told(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **options: seen.append(options))
    video = _tiny_video_unet()
    video.compile_regions()
    assert seen and all(o == {"dynamic": False} for o in seen)  # one graph per block shape, never shape-generic
    assert video.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # compiled runs channels-last
    seen.clear()
    plain = _tiny_video_unet()
    plain.compile_regions(channels_last=False, dynamic=True, mode="max-autotune")
    assert seen and all(o == {"dynamic": True, "mode": "max-autotune"} for o in seen)
    assert all(p.is_contiguous() for p in plain.parameters())


def _long_attention_calls(video, x, t, text) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of one step, and how many attention kernels over >= 1,024 keys its backward ran."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from sdvideo.models.temporal_wrappers import ATTENTION_KERNELS, keeps_attention_output

    class CountLongAttention(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in ATTENTION_KERNELS and keeps_attention_output(args[1]):
                CountLongAttention.calls += 1
            return func(*args, **(kwargs or {}))

    out = video(x, t, text, fps=torch.tensor([8.0])).sample
    with CountLongAttention():
        out.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in video.named_parameters() if p.grad is not None}
    video.zero_grad(set_to_none=True)
    return grads, CountLongAttention.calls


def _video_at_1024_tokens():
    """The tiny model on 32 x 32 latents: its top level's self-attention has 1,024 keys (kept by
    selective checkpointing), the level below 256 (recomputed)."""
    video = _tiny_video_unet()
    for module in video.modules():  # dropout (p = 0) would make the checkpointed regions save RNG state
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    return video, torch.randn(1, 4, 2, 32, 32), torch.tensor([500]), torch.randn(1, 7, dim)


def test_selective_checkpointing_keeps_long_attention_and_matches_plain() -> None:
    video, x, t, text = _video_at_1024_tokens()
    plain, calls_plain = _long_attention_calls(video, x, t, text)
    results = {}
    for level in ("attention", "selective", "light-1", "light-2"):
        video.set_gradient_checkpointing(level)
        results[level] = _long_attention_calls(video, x, t, text)
    assert calls_plain == 0
    assert results["attention"][1] == 3  # the top level's three transformers recompute their self-attention
    assert results["selective"][1] == 0  # ...selective keeps those outputs
    assert results["light-1"][1] == results["light-2"][1] == 0  # ...and so do the light levels
    for level, (grads, _) in results.items():
        assert grads.keys() == plain.keys()
        for name in plain:
            torch.testing.assert_close(grads[name], plain[name], rtol=1e-5, atol=1e-6)


def _backward_graphs_of(video, x, t, text) -> tuple[list[torch.fx.GraphModule], dict[str, torch.Tensor]]:
    """Compile `video`'s regions with AOTAutograd's min-cut partitioner (inductor's, without codegen)
    and return the backward graphs of one step, and its gradients."""
    from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
    from torch._dynamo.backends.common import aot_autograd

    backward_graphs = []

    def keep_backward(graph, _inputs):
        backward_graphs.append(graph)
        return make_boxed_func(graph.forward)

    backend = aot_autograd(fw_compiler=lambda g, _: make_boxed_func(g.forward), bw_compiler=keep_backward,
                           partition_fn=min_cut_rematerialization_partition)
    torch._dynamo.reset()
    compiled = copy.deepcopy(video).compile_regions(backend=backend)
    _, grads = _step(compiled, x, t, text)
    return backward_graphs, grads


def test_compiled_selective_checkpointing_recomputes_no_long_attention_in_backward() -> None:
    from sdvideo.models.temporal_wrappers import ATTENTION_KERNELS

    video, x, t, text = _video_at_1024_tokens()
    _, plain = _step(video, x, t, text)

    def long_attention_in(graphs) -> int:
        count = 0
        for node in (node for g in graphs for node in g.graph.nodes):
            args = node.args
            if "run_with_rng_state" in str(node.target):  # a seeded kernel recomputed with its forward's RNG state
                args = args[2:] if args[1] in ATTENTION_KERNELS else ()
            elif node.target not in ATTENTION_KERNELS:
                continue
            count += bool(args) and args[1].meta["val"].shape[-2] >= 1024
        return count

    counts = {}
    for level in ("attention", "selective", "light-1"):  # (without checkpointing, nothing is recomputed at all)
        video.set_gradient_checkpointing(level)
        graphs, grads = _backward_graphs_of(video, x, t, text)
        counts[level] = long_attention_in(graphs)
        for name in plain:
            torch.testing.assert_close(grads[name], plain[name], rtol=1e-4, atol=1e-5)
    # One compiled graph serves the top level's three transformers (same shapes): the checkpointed
    # graph recomputes self-attention in backward; the selective and light ones keep its output.
    assert counts == {"attention": 1, "selective": 0, "light-1": 0}


def test_light_policy_recomputes_only_projections_out_of_the_residual_stream() -> None:
    from torch.utils.checkpoint import CheckpointPolicy

    from sdvideo.models.temporal_wrappers import ATTENTION_KERNELS, FUSED_ATTENTION_KERNELS, SavePolicy, contraction_size

    aten, save, recompute = torch.ops.aten, CheckpointPolicy.MUST_SAVE, CheckpointPolicy.PREFER_RECOMPUTE
    light, selective = SavePolicy(max_recomputed_contraction=320), SavePolicy()
    tokens, wide = torch.empty(8, 320), torch.empty(8, 1280)
    assert contraction_size(aten.mm.default, (tokens, torch.empty(320, 2560))) == 320
    assert contraction_size(aten.addmm.default, (torch.empty(320), wide, torch.empty(1280, 320))) == 1280
    assert contraction_size(aten.convolution.default, (torch.empty(1, 64, 8, 8), torch.empty(32, 64, 3, 3))) == 576
    assert contraction_size(aten.gelu.default, (tokens,)) is None
    # light: a projection out of 320 channels (q, k, v, a feed-forward's first layer) is recomputed, a
    # wider contraction (the feed-forward's second layer, a 3 x 3 convolution) and every attention stored.
    assert light(None, aten.mm.default, tokens, torch.empty(320, 2560)) == recompute
    assert light(None, aten.addmm.default, torch.empty(320), wide, torch.empty(1280, 320)) == save
    assert light(None, aten.convolution.default, torch.empty(1, 320, 8, 8), torch.empty(320, 320, 3, 3),
                 None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1) == save
    assert light(None, aten.gelu.default, tokens) == recompute
    short_key = torch.empty(1, 8, 16, 40)  # 16 keys: temporal or cross-attention
    for kernel in ATTENTION_KERNELS:
        assert light(None, kernel, short_key, short_key, short_key) == save
        assert selective(None, kernel, short_key, short_key, short_key) == recompute
    for kernel in FUSED_ATTENTION_KERNELS:
        assert light(None, kernel, torch.empty(8, 16, 192)) == save
    # selective keeps no matmul
    assert selective(None, aten.addmm.default, torch.empty(320), wide, torch.empty(1280, 320)) == recompute


def test_light_levels_store_between_none_and_selective() -> None:
    from sdvideo.training.memory_estimate import estimate_training_memory

    def stored(level: str) -> float:
        return estimate_training_memory(preset("tiny")["unet"], {}, 1, 4, 32, optimizer="adamw",
                                        gradient_checkpointing=level, compiled=True)["activations_gib"]

    assert stored("none") > stored("light-1") > stored("light-2") > stored("selective-2")
    assert stored("light-1") > stored("selective-1")


def test_light_1_plus_k_recomputes_the_next_levels_first_k_transformers() -> None:
    from sdvideo.models.video_unet import VideoUNet

    with torch.device("meta"):
        model = VideoUNet(unet_config=preset("sd15")["unet"])
    names = {id(t): name for name, t in model.named_modules()}
    for level in ("light-1", "light-1+2", "light-2"):
        model.set_gradient_checkpointing(level)
        recomputed = [names[id(t)] for _, t in model._transformers_by_level() if t.checkpoint]
        assert all(t.save_policy is not None for _, t in model._transformers_by_level())
        top = ["unet.down_blocks.0.attentions.0", "unet.down_blocks.0.attentions.1", "unet.up_blocks.3.attentions.0",
               "unet.up_blocks.3.attentions.1", "unet.up_blocks.3.attentions.2"]
        second = ["unet.down_blocks.1.attentions.0", "unet.down_blocks.1.attentions.1", "unet.up_blocks.2.attentions.0",
                  "unet.up_blocks.2.attentions.1", "unet.up_blocks.2.attentions.2"]
        expected = {"light-1": top, "light-1+2": top[:2] + second[:2] + top[2:], "light-2": top[:2] + second[:2] + second[2:] + top[2:]}
        assert sorted(recomputed) == sorted(expected[level]), (level, recomputed)
    model.set_gradient_checkpointing("none")
    assert not any(t.checkpoint for _, t in model._transformers_by_level())
    with pytest.raises(ValueError, match="light-1\\+1"):
        model.set_gradient_checkpointing("light-1+9")


def test_light_1_plus_k_estimates_fall_between_light_1_and_light_2() -> None:
    from sdvideo.training.memory_estimate import estimate_training_memory

    def peak(level: str) -> float:
        return estimate_training_memory(preset("sd15")["unet"], {}, 2, 16, 64, optimizer="adamw8bit",
                                        gradient_checkpointing=level, compiled=True)["total_gib"]

    peaks = [peak(level) for level in ("light-1", "light-1+1", "light-1+2", "light-1+3", "light-1+4", "light-2")]
    assert peaks == sorted(peaks, reverse=True) and len(set(peaks)) == len(peaks)
    steps = [a - b for a, b in zip(peaks, peaks[1:])]  # each 32 x 32 transformer: about 1.1 GiB at 2 x 16
    assert all(0.9 < s < 1.3 for s in steps), steps


def _convolution_backward_arguments(graphs) -> list[torch.Tensor]:
    """The traced (fake) gradient and input of every convolution_backward in `graphs`: inductor hands
    them to cuDNN with exactly these strides."""
    return [arg.meta["val"] for g in graphs for node in g.graph.nodes
            if node.target is torch.ops.aten.convolution_backward.default for arg in node.args[:2]]


def test_compiled_convolutions_get_channels_last_gradients_and_inputs_in_backward() -> None:
    # Without `LeanConv2d.channels_last_io`, a conv after a (decomposed) GroupNorm saw its input, and
    # some their output gradient, plainly contiguous in the traced backward; cuDNN copied each to
    # channels-last (on the CPU a dozen such arguments here; on an H100 20 ms of a 0.33 s step, run 26).
    from sdvideo.models.layout import memory_format_of

    video = _tiny_video_unet()
    video.set_gradient_checkpointing("selective")
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, t, text = torch.randn(1, 4, 4, 16, 16), torch.tensor([500]), torch.randn(1, 7, dim)
    graphs, _ = _backward_graphs_of(video, x, t, text)
    args = _convolution_backward_arguments(graphs)
    assert len(args) >= 2 * 16  # the tiny UNet's resnet, temporal and attention projection convs
    assert all(memory_format_of(a) in (torch.channels_last, torch.channels_last_3d) or a.shape[-2:] == (1, 1)
               for a in args), [(tuple(a.shape), a.stride()) for a in args if memory_format_of(a) is torch.contiguous_format]


def test_channels_last_model_stores_temporal_conv_weights_channels_last_3d() -> None:
    # cuDNN picks a convolution's layout from its input and weight; a compiled inference graph saw the
    # temporal convolution's input in no fixed layout yet, so the weight's layout decided (run 27).
    video = _tiny_video_unet()
    before = {n: p.detach().clone() for n, p in video.named_parameters()}
    video.to_channels_last()
    convs = [m for m in video.modules() if type(m).__name__ == "TemporalConv"]
    assert convs and all(m.conv.weight[..., None, None].is_contiguous(memory_format=torch.channels_last_3d)
                         and not m.conv.weight.is_contiguous() for m in convs)
    assert all(torch.equal(p, before[n]) for n, p in video.named_parameters())  # same values, new layout


def test_cudnn_benchmarking_on_for_cuda_work_only(monkeypatch) -> None:
    from sdvideo.fast.cudnn_benchmark import ENV, benchmark_cudnn_algorithms

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert not benchmark_cudnn_algorithms("cpu") and torch.backends.cudnn.benchmark is False
    monkeypatch.setenv(ENV, "0")
    assert not benchmark_cudnn_algorithms("cuda") and torch.backends.cudnn.benchmark is False
    monkeypatch.delenv(ENV)
    assert benchmark_cudnn_algorithms(torch.device("cuda", 0)) and torch.backends.cudnn.benchmark is True
