"""`prefer_cublaslt` (blas_backend.py): chosen for CUDA work only, and never over the user's own setting."""

from __future__ import annotations

import torch

from sdvideo import blas_backend


def test_cpu_work_and_user_settings_leave_the_choice_alone(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(torch.backends.cuda, "preferred_blas_library", lambda backend=None: calls.append(backend))
    monkeypatch.delenv("TORCH_BLAS_PREFER_CUBLASLT", raising=False)
    monkeypatch.delenv(blas_backend.ENV, raising=False)
    assert not blas_backend.prefer_cublaslt("cpu") and calls == []
    monkeypatch.setattr(torch.version, "hip", None)
    assert blas_backend.prefer_cublaslt("cuda") and calls == ["cublaslt"]
    assert blas_backend.prefer_cublaslt(torch.device("cuda", 0)) and calls == ["cublaslt"] * 2
    monkeypatch.setenv(blas_backend.ENV, "0")
    assert not blas_backend.prefer_cublaslt("cuda")
    monkeypatch.delenv(blas_backend.ENV)
    monkeypatch.setenv("TORCH_BLAS_PREFER_CUBLASLT", "0")  # the user's own choice
    assert not blas_backend.prefer_cublaslt("cuda") and len(calls) == 2
