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
