import json
import random

import pytest
import torch

from training.ml.config import RewardConfig, SamplingConfig
from training.ml.labels import LabelRecord, read_labels_jsonl
from training.ml.reward import load_reward_model, score_responses, train_reward_model

MARK = 100  # the token the synthetic labeler prefers


def synthetic_labels(n: int, seed: int = 0, k: int = 4) -> list[dict]:
    """The chosen response is the only one containing token MARK."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        query = [rng.randrange(30, 90) for _ in range(rng.randrange(3, 7))]
        responses = [[rng.randrange(30, 90) for _ in range(rng.randrange(3, 7))] for _ in range(k)]
        best = rng.randrange(k)
        responses[best][rng.randrange(len(responses[best]))] = MARK
        record = {
            "comparison_id": i,
            "query": "q",
            "query_token_ids": query,
            "best": best,
            "sample_token_ids": responses,
        }
        record.update({f"sample{j}": "s" for j in range(k)})
        records.append(record)
    return records


def test_label_record_parsing(tmp_path):
    path = tmp_path / "labels.jsonl"
    lines = [
        {
            "comparison_id": 1,
            "query": "a",
            "sample0": "x",
            "sample1": "y",
            "best": 1,
            "query_token_ids": None,
            "sample_token_ids": None,
        },
        {"comparison_id": 2, "query": "a", "sample0": "x", "sample1": "y", "best": None},
        {"comparison_id": 3, "query": "a", "sample0": "x", "sample1": "y", "best": -1},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    records = read_labels_jsonl(path)
    assert [r.best for r in records] == [1, None, None]
    assert records[0].samples == ["x", "y"] and records[0].query_token_ids is None
    with pytest.raises(ValueError):
        LabelRecord.from_dict({"query": "a", "sample0": "x", "best": 0})


def test_reward_model_learns_synthetic_preference(tiny_model_dir, tmp_path):
    labels = synthetic_labels(480)
    labels.append({**labels[0], "best": None})  # a skipped label is ignored
    config = RewardConfig(
        learning_rate=3e-3,
        batch_size=8,
        micro_batch_size=8,
        holdout_fraction=0.15,
        normalization_samples=64,
    )
    steps = []
    result = train_reward_model(
        labels,
        str(tiny_model_dir),
        tmp_path / "rm",
        config,
        SamplingConfig(),
        progress=lambda d, t: steps.append((d, t)),
    )
    metrics = result.metrics
    assert metrics["labels_skipped"] == 1 and metrics["labels_holdout"] == 72
    assert steps[-1][0] == steps[-1][1]
    assert metrics["holdout_accuracy"] > 0.6, metrics  # chance: 0.25
    _, _, meta = load_reward_model(tmp_path / "rm")
    assert meta["gain"] == pytest.approx(result.gain)
    pairs = synthetic_labels(16, seed=1)
    queries = [p["query_token_ids"] for p in pairs for _ in range(4)]
    responses = [r for p in pairs for r in p["sample_token_ids"]]
    scores = torch.tensor(score_responses(tmp_path / "rm", queries, responses)).view(16, 4)
    chosen = torch.tensor([p["best"] for p in pairs])
    assert (scores.argmax(1) == chosen).float().mean() > 0.5


def test_reward_normalization_over_samples_of_base(tiny_model_dir, tmp_path):
    config = RewardConfig(
        learning_rate=1e-3,
        batch_size=8,
        micro_batch_size=4,
        holdout_fraction=0.0,
        normalization_samples=24,
    )
    sampling = SamplingConfig(k=4, query_length=8, response_length=6, truncate_after=1)
    queries = ["The movie was", "It is a", "Dogs and"]
    result = train_reward_model(
        synthetic_labels(16),
        str(tiny_model_dir),
        tmp_path / "rm",
        config,
        sampling,
        normalization_queries=queries,
    )
    # Re-sample the same normalization set: its normalized rewards have mean 0, std 1.
    from training.ml.models import load_model, load_tokenizer
    from training.ml.sampling import sample_responses

    base, tokenizer = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    samples = sample_responses(
        base,
        tokenizer,
        [queries[i % 3] for i in range(6)],
        sampling,
        generator=torch.Generator().manual_seed(config.seed),
    )
    pairs = [(s.query_token_ids, r) for s in samples for r in s.response_token_ids][:24]
    scores = torch.tensor(
        score_responses(result.out_dir, [q for q, _ in pairs], [r for _, r in pairs])
    )
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert scores.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)


def test_lora_reward_model_and_warm_start(tiny_model_dir, tmp_path):
    config = RewardConfig(
        learning_rate=1e-3,
        batch_size=4,
        micro_batch_size=2,
        lora_rank=4,
        holdout_fraction=0.25,
        normalization_samples=8,
    )
    first = train_reward_model(
        synthetic_labels(16), str(tiny_model_dir), tmp_path / "rm1", config, SamplingConfig()
    )
    assert first.metrics["labels_train"] == 12 and first.model is not None
    again = train_reward_model(
        synthetic_labels(16, seed=5),
        str(tiny_model_dir),
        tmp_path / "rm2",
        config,
        SamplingConfig(),
        init_from=tmp_path / "rm1",
    )
    assert (tmp_path / "rm2" / "model" / "config.json").is_file()
    # Warm start: the new head starts from the previous one (changed by training).
    warm, _, _ = load_reward_model(tmp_path / "rm2")
    cold, _, _ = load_reward_model(tmp_path / "rm1")
    assert not torch.equal(warm.head.linear.weight, cold.head.linear.weight)
    assert again.metrics["holdout_accuracy"] >= 0.0


def test_an_ensemble_trains_each_member_on_its_bootstrap_weights(
    tiny_model_dir, tmp_path, monkeypatch
):
    from training.ml import reward
    from training.ml.models import RewardModel, load_model
    from training.ml.reward import score_token_ids

    labels = synthetic_labels(64)
    config = RewardConfig(
        learning_rate=3e-3, batch_size=8, normalization_samples=16, ensemble_members=3, seed=5
    )
    real = reward.bootstrap_weights

    def member_1_sees_nothing(keys, members, seed):
        weights = real(keys, members, seed)
        weights[:, 1:2] = 0.0  # (the single head below keeps its weights)
        return weights

    monkeypatch.setattr(reward, "bootstrap_weights", member_1_sees_nothing)
    train_reward_model(labels, str(tiny_model_dir), tmp_path / "rm", config, SamplingConfig())
    model, _, _ = load_reward_model(tmp_path / "rm")
    assert model.head.size == 3
    torch.manual_seed(5)
    fresh = RewardModel(load_model(str(tiny_model_dir)), members=3)
    head, initial = model.head.linear.weight, fresh.head.linear.weight
    # A member with weight 0 on every label is where it started; the others moved, apart.
    assert torch.equal(head[1], initial[1])
    assert not torch.allclose(head[0], initial[0]) and not torch.allclose(head[2], initial[2])
    assert not torch.allclose(head[0] - initial[0], head[2] - initial[2])

    queries = [p["query_token_ids"] for p in labels[:4] for _ in range(4)]
    responses = [r for p in labels[:4] for r in p["sample_token_ids"]]
    each = score_token_ids(model, queries, responses, members=True)
    raw = score_token_ids(model, queries, responses, normalized=False)
    assert each.shape == (16, 3)
    assert torch.allclose(each.mean(-1), raw, atol=1e-6)  # the reward is the members' mean
    assert not torch.allclose(each[:, 0], each[:, 2])

    # Warm-started into a single head (the task's ensemble setting changed): a new head.
    single = RewardConfig(learning_rate=3e-3, batch_size=8, normalization_samples=16)
    train_reward_model(
        labels, str(tiny_model_dir), tmp_path / "rm1", single, init_from=tmp_path / "rm"
    )
    assert load_reward_model(tmp_path / "rm1")[0].head.size == 1


def test_one_member_trains_as_the_plain_k_way_loss_does(tiny_model_dir, tmp_path, monkeypatch):
    # The default (1 member) is the paper's reward model: its loss is the K-way cross-entropy.
    from training.ml import reward

    labels = synthetic_labels(16)
    config = RewardConfig(learning_rate=3e-3, batch_size=8, normalization_samples=8)
    losses = []
    real = reward.ensemble_kway_loss

    def spy(member_rewards, best, weights):
        loss = real(member_rewards, best, weights)
        plain = reward.kway_reward_loss(member_rewards[..., 0], best)
        losses.append((loss.item(), plain.item(), weights.unique().tolist()))
        return loss

    monkeypatch.setattr(reward, "ensemble_kway_loss", spy)
    train_reward_model(labels, str(tiny_model_dir), tmp_path / "rm", config)
    assert losses and all(a == pytest.approx(b) and w == [1.0] for a, b, w in losses)
