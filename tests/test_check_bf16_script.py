"""bench/check_bf16_training.py's CPU mode: runs and compares every variant (the GPU run checks the fused kernels).

In a subprocess: the script wraps the fused kernels, which must not leak into the other tests of this session.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "check_bf16_training.py"


def run_script(tmp_path: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--json", str(out), *args],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "0 FAIL, 0 skipped" in run.stdout
    return json.loads(out.read_text())


def test_cpu_mode_compares_every_variant(tmp_path):
    result = run_script(tmp_path)
    rows = {row["variant"]: row for row in result["rows"]}
    assert set(rows) == {"train fp32 fused", "train bf16 none", "train bf16 light-1", "train bf16 selective-2",
                         "train bf16 full", "infer bf16 CL", "infer bf16 CL time off", "infer fp16 CL guided pair"}
    assert not result["fused_kernel"] and all(row["fused"] == [0, 0] for row in rows.values())
    assert rows["train fp32 fused"]["out_rel"] == 0 and rows["train fp32 fused"]["all_cos"] == pytest.approx(1)
    for name in ("train bf16 none", "train bf16 full"):
        row = rows[name]  # bf16 differs from fp32, but not by much
        assert 1e-4 < row["out_rel"] < 5e-2 and 1e-4 < row["all_rel"] < 5e-2 and row["all_cos"] > 0.999
        assert {"to_qkv_rel", "to_out_rel", "conv_rel", "ff_rel", "norm_rel", "fps_rel"} <= set(row)
    assert 1e-4 < rows["infer bf16 CL"]["out_rel"] < 5e-2


def test_experiment_size_is_experiment_py_s():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import check_bf16_training
        import experiment
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert check_bf16_training.experiment_size() == experiment.SIZES["full"]
