"""bench/label_efficiency.py's reward model: the cpu-small reward preset's top blocks (and an
optional ensemble of heads) over the frozen trunk's hidden states, computed once per
(prompt, response) and cached, with its retrain and test accuracy."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from training.ml.losses import bootstrap_weights, ensemble_kway_loss, kway_accuracy
from training.ml.models import load_model
from training.ml.presets import preset

MODEL = "embedded:smollm2-135m"
K = 4
Example = tuple[tuple[int, ...], int]  # (flat sequence indices of the K responses, best)


@torch.no_grad()
def trunk_inputs(rows: list[dict[str, Any]], layers: int, path: Path) -> tuple[Tensor, Tensor]:
    """Hidden states entering the top ``layers`` blocks for every (query + response) sequence,
    row after row: (N, T, H) float16, and lengths (N,)."""
    if path.exists():
        cached = torch.load(path)
        return cached["hidden"], cached["lengths"]
    trunk = load_model(MODEL, device="cpu").model
    depth = len(trunk.layers)
    sequences = [r["query_token_ids"] + ids for r in rows for ids in r["response_token_ids"]]
    lengths = torch.tensor([len(s) for s in sequences])
    hidden = torch.zeros(
        len(sequences), int(lengths.max()), trunk.config.hidden_size, dtype=torch.float16
    )
    order = sorted(range(len(sequences)), key=lambda i: lengths[i])  # little padding
    for start in tqdm(range(0, len(order), 32), desc="trunk hidden states", unit="batch"):
        batch = order[start : start + 32]
        width = int(lengths[batch].max())
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for b, i in enumerate(batch):
            ids[b, : lengths[i]] = torch.tensor(sequences[i])
            mask[b, : lengths[i]] = 1
        out = trunk(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        states = out.hidden_states[depth - layers]  # (b, width, H): input of the top blocks
        for b, i in enumerate(batch):
            hidden[i, : lengths[i]] = states[b, : lengths[i]].half()
    torch.save({"hidden": hidden, "lengths": lengths}, path)
    return hidden, lengths


class TopBlocksRewardModel(nn.Module):
    """The top blocks, the final norm and a head read at the last token, over cached trunk
    hidden states: what the cpu-small reward preset trains (the trunk below is frozen, so its
    output does not change). ``members`` > 1: an ensemble of that many linear heads over the
    shared top blocks, each trained on its own bootstrap weights; the reward is their mean."""

    def __init__(self, layers: int, members: int = 1) -> None:
        super().__init__()
        top = load_model(MODEL, device="cpu").model
        top.layers = nn.ModuleList(list(top.layers)[-layers:])
        top.config.num_hidden_layers = layers
        top.embed_tokens = None
        self.top = top
        self.head = nn.Linear(top.config.hidden_size, members)
        self.reset_head()

    def reset_head(self) -> None:
        nn.init.normal_(self.head.weight, std=1.0 / (self.head.in_features + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    def forward(self, hidden: Tensor, lengths: Tensor, members: bool = False) -> Tensor:
        """hidden: (N, T, H) cached trunk states; lengths: (N,). Returns raw rewards (N,), the
        members' mean, or each member's (N, E)."""
        width = int(lengths.max())
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (N, T), right-padded
        out = self.top(
            inputs_embeds=hidden[:, :width].float(), attention_mask=mask, use_cache=False
        )
        last = out.last_hidden_state[torch.arange(len(lengths)), lengths - 1]  # (N, H)
        each = self.head(last)  # (N, E)
        return each if members else each.mean(-1)


class Features:
    """Cached trunk states of every row's responses; row i's response j is sequence
    ``offsets[i] + j``."""

    def __init__(self, rows: list[dict[str, Any]], hidden: Tensor, lengths: Tensor) -> None:
        self.hidden, self.lengths = hidden, lengths
        sizes = [len(r["response_token_ids"]) for r in rows]
        self.offsets = [sum(sizes[:i]) for i in range(len(rows))]

    def rewards(
        self, model: nn.Module, sequences: list[int], batch: int = 64, members: bool = False
    ) -> Tensor:
        """Raw rewards (N,), or each member's (N, E)."""
        with torch.no_grad():
            return torch.cat(
                [
                    model(
                        self.hidden[sequences[s : s + batch]],
                        self.lengths[sequences[s : s + batch]],
                        members,
                    )
                    for s in range(0, len(sequences), batch)
                ]
            )

    def kway(self, model: nn.Module, examples: list[Example], members: bool = False) -> Tensor:
        """(B, K) rewards, or (B, K, E) with each member's."""
        flat = [i for sequences, _ in examples for i in sequences]
        out = model(self.hidden[flat], self.lengths[flat], members)
        return out.view(len(examples), K, -1) if members else out.view(len(examples), K)


def retrain(
    model: TopBlocksRewardModel,
    features: Features,
    examples: list[Example],
    seed: int,
    bootstrap_seed: int,
) -> None:
    """One pass of the cpu-small reward preset's training over ``examples`` (lr 5e-4, batch 8,
    linear decay to 0 within the retrain, as training/ml/reward.py); an ensemble's members
    each on their bootstrap weights (drawn per label: the same across retrains)."""
    config = preset("cpu-small").reward
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    batches = [
        examples[s : s + config.batch_size] for s in range(0, len(examples), config.batch_size)
    ]
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / len(batches))
    model.train()
    for batch in batches:
        best = torch.tensor([b for _, b in batch])
        weights = bootstrap_weights(
            [seq[0] for seq, _ in batch], model.head.out_features, bootstrap_seed
        )
        ensemble_kway_loss(features.kway(model, batch, members=True), best, weights).backward()
        optimizer.step()
        decay.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()


def accuracy(model: nn.Module, features: Features, examples: list[Example]) -> float:
    with torch.no_grad():
        rewards = torch.cat(
            [features.kway(model, examples[s : s + 32]) for s in range(0, len(examples), 32)]
        )
    return float(kway_accuracy(rewards, torch.tensor([b for _, b in examples])))
