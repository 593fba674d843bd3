"""Run by torchrun from test_reward_batches.py: train a reward model data-parallel on 17 labels
(batches of 8: the last batch leaves one rank without a label) and save it from rank 0."""

import sys
from pathlib import Path

import torch

from tests.training.ml.test_reward import synthetic_labels
from training.ml import distributed
from training.ml.config import RewardConfig
from training.ml.reward import train_reward_model

LABELS = synthetic_labels(17, seed=3)
CONFIG = RewardConfig(
    learning_rate=1e-3, batch_size=8, micro_batch_size=2, normalization_samples=16
)


def main(model_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_from_environment()
    torch.manual_seed(99 + distributed.rank())  # ranks' own RNGs differ: sync must not rely on them
    train_reward_model(LABELS, model_dir, Path(out), CONFIG)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
