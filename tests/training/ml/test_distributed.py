import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_parameters(tiny_model_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        str(ROOT / "tests/training/ml/distributed_worker.py"),
        str(tiny_model_dir),
        str(tmp_path),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["beta"] == rank1["beta"] and len(rank0["beta"]) == 2
    base = torch.load(tmp_path / "rank0.pt", weights_only=False)  # compare against the start too
    from transformers import GPT2LMHeadModel

    initial = GPT2LMHeadModel.from_pretrained(tiny_model_dir).state_dict()
    for part in ("reward", "policy"):
        assert rank0[part].keys() == rank1[part].keys()
        for name in rank0[part]:
            assert torch.equal(rank0[part][name], rank1[part][name]), (part, name)
    moved = base["policy"]["lm.transformer.h.0.attn.c_attn.weight"]
    assert not torch.equal(moved, initial["transformer.h.0.attn.c_attn.weight"])
    assert (tmp_path / "rm" / "reward.json").is_file()
    assert (tmp_path / "policy" / "LATEST").is_file()


@pytest.mark.slow
def test_micro_batches_do_not_change_the_update(tiny_model_dir, tmp_path):
    """Losses are token means over a minibatch: splitting it into micro-batches (what N ranks
    or gradient accumulation do) trains the same policy, responses of unequal lengths too."""
    from tests.training.ml.test_ppo import QUERIES, good_fraction, tiny_config
    from training.ml.checkpoint import latest_checkpoint
    from training.ml.config import SamplingConfig
    from training.ml.ppo import train_policy

    # Cut after any token holding a space, from token 1 on: responses of many lengths.
    sampling = SamplingConfig(
        k=1, query_length=8, response_length=6, truncate_token=" ", truncate_after=1
    )
    runs = {}
    for steps in (1, 4):
        config = tiny_config(total_episodes=32, gradient_accumulation_steps=steps)
        history = train_policy(
            str(tiny_model_dir), good_fraction, QUERIES, tmp_path / str(steps), config, sampling
        )
        weights = latest_checkpoint(tmp_path / str(steps)) / "trainable.safetensors"
        runs[steps] = history, load_file(weights)
    assert runs[1][0][0]["response_length"] < 6  # some responses were cut: lengths differ
    for one, four in zip(runs[1][0], runs[4][0], strict=True):
        for key in ("score", "kl", "policy_loss", "value_loss", "entropy"):
            assert four[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    for name, weight in runs[1][1].items():
        if name.endswith("weight"):
            torch.testing.assert_close(weight, runs[4][1][name], rtol=1e-4, atol=1e-5)
