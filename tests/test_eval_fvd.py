"""FVD: the Fréchet distance against scipy's matrix square root, a TorchScript feature network, the CLI."""

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from sdvideo.cli import main
from sdvideo.eval.fvd import frechet_distance, fvd, load_detector, video_features

from test_eval_cli import make_run


def reference_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_matches_scipy_and_is_zero_for_one_set():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 6))
    b = rng.normal(loc=0.5, scale=1.5, size=(40, 6)) @ rng.normal(size=(6, 6))
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(reference_distance(a, b), rel=1e-6)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0.0, abs=1e-8)
    shifted = frechet_distance(torch.from_numpy(a), torch.from_numpy(a + 2.0))  # mean moved by 2 in 6 dims
    assert shifted == pytest.approx(24.0, rel=1e-6)


class TinyI3D(torch.nn.Module):
    """The call signature of the common i3d_torchscript.pt, with a 3-D conv and pooling as features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 5, 3, padding=1)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3, 4))  # (N, 5)


@pytest.fixture
def detector_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(TinyI3D()), str(path))
    return path


def test_fvd_through_a_torchscript_detector(detector_file):
    rng = np.random.default_rng(1)
    real = [rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8) for _ in range(6)]
    dark = [(v // 4).astype(np.uint8) for v in real]
    detector = load_detector(detector_file)
    features = video_features(real, detector, batch_size=4)
    assert features.shape == (6, 5)
    assert fvd(real, real, detector_file) == pytest.approx(0.0, abs=1e-8)
    far = fvd(real, dark, detector_file)
    assert far == pytest.approx(frechet_distance(features, video_features(dark, detector)), rel=1e-9) and far > 0
    with pytest.raises(ValueError, match="not a TorchScript model"):
        (detector_file.parent / "bad.pt").write_bytes(b"not a model")
        load_detector(detector_file.parent / "bad.pt")


def test_eval_cli_reports_fvd(tmp_path, tiny_cache, tiny_base_dir, detector_file, capsys):
    run = make_run(tmp_path / "run", tiny_cache, tiny_base_dir)
    out = tmp_path / "report"
    args = ["eval", "--run", str(run), "--data", str(tiny_cache), "--out", str(out), "--samples", "2", "--steps", "2",
            "--buckets", "2", "--clips", "2", "--device", "cpu", "--ego-prompt", "a moving square"]
    assert main(args + ["--fvd", str(detector_file)]) == 0, capsys.readouterr().err
    result = json.loads((out / "metrics.json").read_text())["fvd"]
    assert all(math.isfinite(result[k]) and result[k] >= 0 for k in ("video", "independent"))
    assert result["videos"] == {"real": 2, "generated": 2}
    assert "## FVD" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(args + ["--fvd", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing.pt" in err and "I3D TorchScript" in err
