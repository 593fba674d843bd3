from pathlib import Path

import pytest
import torch

from training.ml import models as ml_models
from training.ml.config import SamplingConfig
from training.ml.models import (
    EMBEDDED_DEFAULT,
    PolicyWithValue,
    RewardModel,
    add_lora,
    load_model,
    load_model_and_tokenizer,
    resolve_model_path,
)
from training.ml.sampling import pad_left, pad_right, sample_responses


def test_value_head_starts_at_zero_and_lora_reference(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    policy = PolicyWithValue(add_lora(lm, 4, 8.0))
    query_ids, query_mask = pad_left([[5, 6, 7]], 0)
    response_ids, response_mask = pad_right([[8, 9]], 0)
    with torch.no_grad():
        for parameter in policy.lm.parameters():  # perturb the adapter: policy != reference
            if parameter.requires_grad:
                parameter.add_(0.5)
        logits, values = policy.logits_and_values(
            query_ids, query_mask, response_ids, response_mask, temperature=0.7
        )
        ref_logits, _ = policy.logits_and_values(
            query_ids, query_mask, response_ids, response_mask, 0.7, reference=True
        )
        plain = load_model(str(tiny_model_dir))(torch.tensor([[5, 6, 7, 8]])).logits[0, 2:]
    assert torch.equal(values, torch.zeros_like(values))
    assert torch.allclose(ref_logits[0], plain / 0.7, atol=1e-5)
    assert not torch.allclose(logits, ref_logits, atol=1e-3)
    assert sum(p.numel() for p in policy.parameters()) < 1.2 * sum(
        p.numel() for p in lm.parameters()
    )


def test_reward_model_reads_last_token(tiny_model_dir):
    model = RewardModel(load_model(str(tiny_model_dir)))
    query_ids, query_mask = pad_left([[5, 6, 7]], 0)
    response_ids, response_mask = pad_right([[8, 9], [8, 9, 10]], 0)
    with torch.no_grad():
        rewards = model.raw_rewards(query_ids, query_mask, response_ids, response_mask)
        hidden = model.lm.transformer(torch.tensor([[5, 6, 7, 8, 9]])).last_hidden_state
    assert rewards.shape == (2,)
    assert torch.allclose(rewards[0], model.head(hidden[0, -1]), atol=1e-5)


@pytest.mark.slow
def test_embedded_model_converts_once_and_samples(monkeypatch):
    path = resolve_model_path(EMBEDDED_DEFAULT)  # converts on first use (~20 s), then cached
    assert sorted(p.suffix for p in Path(path).glob("*.safetensors")) == [".safetensors"]

    def no_gguf(name):
        raise AssertionError("the GGUF file was read again instead of the cached conversion")

    monkeypatch.setattr(ml_models, "embedded_gguf_path", no_gguf)
    model, tokenizer = load_model_and_tokenizer(EMBEDDED_DEFAULT)
    assert type(model).__name__ == "LlamaForCausalLM"
    config = SamplingConfig(k=2, query_length=16, response_length=6, truncate_after=2)
    samples = sample_responses(
        model,
        tokenizer,
        ["The weather today is"],
        config,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(samples[0].responses) == 2 and all(samples[0].response_token_ids)
