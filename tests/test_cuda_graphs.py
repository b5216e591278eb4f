"""GraphedUNet's bookkeeping (one graph per signature, inputs copied in, outputs copied out), checked on the
CPU with a recorder in place of a CUDA graph: its replay re-runs the captured call on the captured inputs
and writes into the captured output, as a graph replay does."""

from __future__ import annotations

import warnings

import pytest
import torch
from diffusers import DDIMScheduler

from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.cuda_graphs import GraphedUNet
from sdvideo.sampling.sampler import denoise_video


class _Recorder:
    def replay(self) -> None:
        self.output.copy_(self.run())


def _record(graph: _Recorder, run):
    graph.run = run
    graph.output = run()
    return graph.output


def _graphed(unet) -> tuple[GraphedUNet, list]:
    recorded = []
    graphed = GraphedUNet(unet, new_graph=lambda: recorded.append(_Recorder()) or recorded[-1], capture=_record)
    return graphed, recorded


@torch.no_grad()
def test_each_call_sees_its_own_inputs_and_keeps_its_output(video_unet) -> None:
    graphed, recorded = _graphed(video_unet)
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    text = torch.randn(2, 7, dim)
    calls = [(torch.randn(2, 4, 3, 8, 8), torch.tensor(t)) for t in (900, 500, 100)]
    outs = [graphed(x, t, text, fps=torch.full((2,), 8.0), enable_time=True) for x, t in calls]
    assert len(recorded) == 1 and graphed.calls.total() == 3  # one signature: the first call plain, then one graph
    for (x, t), out in zip(calls, outs):  # earlier outputs survive later replays: each is a copy
        torch.testing.assert_close(out, video_unet(x, t, text, fps=torch.full((2,), 8.0)).sample, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_a_new_shape_or_flag_gets_its_own_graph(video_unet) -> None:
    graphed, recorded = _graphed(video_unet)
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    text = torch.randn(1, 7, dim)
    x3, x5 = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 4, 5, 8, 8)
    for _ in range(2):  # each signature's second call records its graph
        graphed(x3, 10, text, fps=None, enable_time=True)
        graphed(x3, 20, text, fps=None, enable_time=True)  # same signature (a Python timestep becomes a tensor)
        graphed(x5, 10, text, fps=None, enable_time=True)  # frames
        frames_apart = graphed(x3, 10, text, fps=None, enable_time=False)  # flag
        graphed(x3, 10, text, fps=torch.tensor([8.0]), enable_time=True)  # an input present
    assert len(recorded) == 4 and len(graphed.calls) == 4
    torch.testing.assert_close(frames_apart, video_unet(x3, 10, text, enable_time=False).sample, rtol=1e-5, atol=1e-6)


def test_denoise_video_through_graphs_matches_plain(video_unet) -> None:
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    text, negative = torch.randn(1, 7, dim), torch.zeros(1, 7, dim)
    noise = torch.randn(1, 4, 3, 8, 8)
    results = []
    for graphs in (None, _graphed(video_unet)[0]):
        scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
        results.append(denoise_video(video_unet, scheduler, text, negative, 3, (8, 8), steps=4, fps=8.0,
                                     latents=noise, progress=False, graphs=graphs))
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_pipeline_refuses_cuda_graphs_off_cuda(tiny_base_dir) -> None:
    from sdvideo.sampling.pipeline import VideoPipeline
    from sdvideo.models.base import load_base

    base = load_base(tiny_base_dir)
    unet = inflate(base.unet)
    pipe = VideoPipeline(base.vae, base.text_encoder, base.tokenizer, unet, base.scheduler)
    with pytest.raises(ValueError, match="CUDA graphs need the UNet on a CUDA device, not cpu"):
        pipe.enable_cuda_graphs()


@torch.no_grad()
def test_a_call_that_cannot_be_captured_warns_once_and_runs_plainly(video_unet) -> None:
    def refuse(graph, run):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed = GraphedUNet(video_unet, new_graph=_Recorder, capture=refuse)
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 7, dim)
    graphed(x, 10, text)  # the warm-up
    with pytest.warns(UserWarning, match=r"CUDA graph capture failed \(operation not permitted .*\); running these"):
        first = graphed(x, 10, text)
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        second = graphed(2 * x, 10, text)
    assert not later  # no second attempt
    torch.testing.assert_close(first, video_unet(x, 10, text).sample, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, video_unet(2 * x, 10, text).sample, rtol=1e-5, atol=1e-6)
