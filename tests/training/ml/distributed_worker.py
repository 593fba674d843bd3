"""Run by torchrun from test_distributed.py: train a reward model and a policy data-parallel,
then save this rank's parameters for the test to compare."""

import sys
from pathlib import Path

import torch

from training.ml import distributed, ppo
from training.ml.config import PPOConfig, RewardConfig, SamplingConfig
from training.ml.reward import train_reward_model

torch.set_num_threads(1)


def main(model_dir: str, out: str) -> None:
    from tests.training.ml.test_ppo import QUERIES, SAMPLING, good_fraction
    from tests.training.ml.test_reward import synthetic_labels

    distributed.init_from_environment()
    rank = distributed.rank()
    torch.manual_seed(1234 + rank)  # different local RNG: sync must not depend on it
    result = train_reward_model(
        synthetic_labels(32),
        model_dir,
        Path(out) / "rm",
        RewardConfig(
            learning_rate=1e-3,
            batch_size=8,
            micro_batch_size=2,
            holdout_fraction=0,
            normalization_samples=16,
        ),
        SamplingConfig(),
    )
    built = []
    original = ppo._build_policy

    def keep(base, config):
        policy = original(base, config)
        built.append(policy)
        return policy

    ppo._build_policy = keep
    config = PPOConfig(
        batch_size=8, minibatch_size=4, ppo_epochs=2, learning_rate=1e-3, total_episodes=64, seed=3
    )
    history = ppo.train_policy(
        model_dir, good_fraction, QUERIES, Path(out) / "policy", config, SAMPLING, episodes=16
    )
    torch.save(
        {
            "reward": {k: v.clone() for k, v in result.model.state_dict().items()},
            "policy": {k: v.clone() for k, v in built[0].state_dict().items()},
            "beta": [m["beta"] for m in history],
            "world": distributed.world_size(),
        },
        Path(out) / f"rank{rank}.pt",
    )
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
