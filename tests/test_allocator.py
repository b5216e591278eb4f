"""`sdvideo train` asks for expandable CUDA segments unless the user chose an allocator setting."""

import os

from sdvideo.training import allocator


def test_sets_expandable_segments_when_unset(monkeypatch):
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.setattr(allocator.torch.cuda, "is_initialized", lambda: False)
    assert allocator.prefer_expandable_segments() is True
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"


def test_keeps_the_users_setting_and_does_nothing_after_cuda_started(monkeypatch):
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    assert allocator.prefer_expandable_segments() is False
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF")
    monkeypatch.setattr(allocator.torch.cuda, "is_initialized", lambda: True)
    assert allocator.prefer_expandable_segments() is False
    assert "PYTORCH_CUDA_ALLOC_CONF" not in os.environ


def test_train_sets_it_before_anything_can_start_cuda(monkeypatch, tmp_path):
    # TrainConfig.resolved() asks torch.cuda.is_bf16_supported(), which starts CUDA: the setting must come first.
    import pytest

    from sdvideo.training import train as train_module
    from sdvideo.training.config import TrainConfig

    calls = []
    monkeypatch.setattr(train_module, "prefer_expandable_segments", lambda: calls.append("allocator"))

    def resolved(self):
        calls.append("resolved")
        raise RuntimeError("stop here")

    monkeypatch.setattr(TrainConfig, "resolved", resolved)
    with pytest.raises(RuntimeError, match="stop here"):
        train_module.train(TrainConfig(data=str(tmp_path), base=str(tmp_path), out=str(tmp_path / "r"), device="cuda"))
    assert calls == ["allocator", "resolved"]
