"""CLIP score with a tiny random CLIP saved to disk (nothing downloaded)."""

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from sdvideo.eval.clip_score import clip_scores
from sdvideo.models.tokenizer import char_level_clip_tokenizer


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-clip")
    text = dict(vocab_size=514, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    char_level_clip_tokenizer().save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_clip_score_matches_cosine_by_hand(tiny_clip):
    video = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    scores = clip_scores([video, video[::-1]], ["a red car", "a red car"], tiny_clip)
    assert len(scores) == 2 and scores[0] == pytest.approx(scores[1], abs=1e-4)  # frame order does not matter
    model = CLIPModel.from_pretrained(str(tiny_clip)).eval()
    processor_images = CLIPImageProcessor.from_pretrained(str(tiny_clip))(list(video), return_tensors="pt")
    ids = char_level_clip_tokenizer()(["a red car"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=ids.input_ids, pixel_values=processor_images.pixel_values)
    cos = torch.nn.functional.normalize(out.image_embeds, dim=-1) @ torch.nn.functional.normalize(out.text_embeds, dim=-1).T
    assert scores[0] == pytest.approx(float(100 * cos.clamp(min=0).mean()), abs=1e-3)
    assert 0.0 <= scores[0] <= 100.0


def test_clip_score_bad_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a CLIP model folder"):
        clip_scores([np.zeros((2, 32, 32, 3), np.uint8)], ["x"], tmp_path)
