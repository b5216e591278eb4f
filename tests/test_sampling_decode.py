"""Sliced VAE decoding (bounded memory, same frames as one big decode), the progress bar, and the
frame rate and size of the .gif and .mp4 the CLI writes for --fps and --size WxH."""

import av
import pytest
import torch
from PIL import Image

from sdvideo.cli import main
from sdvideo.sampling.sampler import decode_latents
from test_sampling_pipeline import load, make_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("sampling-decode"))


class CountingDecode:
    """Records the number of images of every `vae.decode` call."""

    def __init__(self, vae):
        self.vae, self.sizes, self.decode = vae, [], vae.decode

    def __enter__(self):
        def counted(z, *args, **kwargs):
            self.sizes.append(z.shape[0])
            return self.decode(z, *args, **kwargs)

        self.vae.decode = counted
        return self

    def __exit__(self, *exc):
        del self.vae.decode


def test_vae_decodes_in_slices_with_the_same_frames(run):
    pipe = load(run)
    latents = torch.randn(2, 4, 7, 8, 8)  # (b, c, frames, h, w): 14 frames in all
    with CountingDecode(pipe.vae) as counter:
        sliced = decode_latents(pipe.vae, latents, frames_per_slice=3)
    assert counter.sizes == [3, 3, 3, 3, 2]  # never more than a slice at once, whatever the length
    whole = decode_latents(pipe.vae, latents, frames_per_slice=14)
    assert sliced.shape == (2, 7, 3, 16, 16) and torch.allclose(sliced, whole, atol=1e-5)
    # Video-major order: frame f of video b is latents[b, :, f].
    single = decode_latents(pipe.vae, latents[1:, :, 4:5], frames_per_slice=1)
    assert torch.allclose(sliced[1, 4], single[0, 0], atol=1e-5)
    with CountingDecode(pipe.vae) as counter:
        pipe("a", num_frames=5, num_inference_steps=1, seed=0, decode_chunk_size=2)
    assert counter.sizes == [2, 2, 1]


def test_cli_shows_a_progress_bar_and_writes_the_gif_at_the_fps(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sample", "--run", str(run), "--prompt", "a", "--frames", "3", "--steps", "2", "--fps", "5",
                 "--size", "16x24", "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "denoise:" in err and "0/2" in err  # a tqdm bar over the 2 denoising steps
    with Image.open(out / "00-a.gif") as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert gif.n_frames == 3 and gif.size == (16, 24) and durations == [200] * 3  # 5 fps = 200 ms per frame
    with av.open(str(out / "00-a.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 5.0
    assert len(frames) == 3 and frames[0].shape == (24, 16, 3)  # --size 16x24: 16 wide, 24 high
