"""The run body of training/ml/launch.py: in-process, and under torchrun with 2 gloo processes
(DDP), which must train what one process trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training.ml.test_ppo import QUERIES
from tests.training.ml.test_reward import synthetic_labels
from training.ml import launch
from training.ml.checkpoint import latest_checkpoint
from training.ml.models import load_model
from training.ml.presets import preset
from training.ml.reward import load_reward_model, score_token_ids

ROOT = Path(__file__).resolve().parents[3]


def tiny_config() -> dict:
    config = preset("cpu-tiny")  # responses cut at "." from token 2: lengths differ
    config.reward.normalization_samples = 16
    config.ppo.total_episodes = 64
    return config.to_dict()


def reward_spec(model_dir: Path, out: Path) -> dict:
    return {
        "kind": "reward",
        "config": tiny_config(),
        "base": str(model_dir),
        "out_dir": str(out),
        "labels": synthetic_labels(19, seed=5),  # batches of 8: the last one has 3 labels
        "evaluate": {"directory": None, "labels": []},
    }


def policy_spec(model_dir: Path, reward: Path, out: Path) -> dict:
    return {
        "kind": "policy",
        "config": tiny_config(),
        "base": str(model_dir),
        "reward": str(reward),
        "queries": QUERIES,
        "out_dir": str(out),
        "episodes": 32,  # two batches of 16: the second starts from trained weights
        "checkpoint_every": 1,
    }


def torchrun(spec: dict, work: Path, processes: int = 2) -> dict:
    work.mkdir(parents=True)
    (work / "spec.json").write_text(json.dumps(spec))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(processes), "-m", "training.ml.launch", str(work / "spec.json"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    assert sorted(p.name for p in work.glob("rank-*.pid")) == ["rank-0.pid", "rank-1.pid"]
    events = [json.loads(line) for line in (work / launch.PROGRESS).read_text().splitlines()]
    assert events and events[-1]["done"] == events[-1]["total"]
    return json.loads((work / launch.RESULT).read_text())


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in module.named_parameters() if n.endswith("weight")}


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown run kind"):
        launch.execute({"kind": "sample", "config": {}})


def test_progress_is_appended_as_json_lines(tmp_path):
    write = launch.progress_writer(tmp_path / "p.jsonl")
    write({"done": 1, "total": 2})
    write({"done": 2, "total": 2, "metrics": {"kl": 0.5}})
    lines = (tmp_path / "p.jsonl").read_text().splitlines()
    assert [json.loads(line)["done"] for line in lines] == [1, 2]


def test_a_rank_exits_when_the_worker_that_launched_it_is_gone():
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = subprocess.Popen(
        [
            sys.executable, "-c",
            "import time; from training.ml import launch; "
            f"launch.watch_parent({worker.pid}, every=0.1); time.sleep(60)",
        ],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            watcher.wait(timeout=3)  # the worker lives: the rank goes on
        worker.kill()
        worker.wait()
        assert watcher.wait(timeout=30) == 1
    finally:
        for process in (worker, watcher):
            if process.poll() is None:
                process.kill()


@pytest.mark.slow
def test_two_gloo_processes_train_what_one_process_does(tiny_model_dir, tmp_path):
    events: list[dict] = []
    one = launch.execute(reward_spec(tiny_model_dir, tmp_path / "rm-1"), events.append)
    assert [e["done"] for e in events] == [1, 2, 3] and "prospective" not in one
    two = torchrun(reward_spec(tiny_model_dir, tmp_path / "rm-2"), tmp_path / "run-rm")
    assert two["metrics"]["processes"] == 2 and one["metrics"]["processes"] == 1
    assert two["metrics"]["train_loss"] == pytest.approx(one["metrics"]["train_loss"], rel=1e-5)
    single, _, _ = load_reward_model(tmp_path / "rm-1")
    double, _, _ = load_reward_model(tmp_path / "rm-2")
    for name, weight in weights(single).items():
        torch.testing.assert_close(weight, weights(double)[name], rtol=1e-4, atol=1e-5)
    labels = synthetic_labels(8, seed=6)
    queries = [r["query_token_ids"] for r in labels for _ in range(4)]
    responses = [s for r in labels for s in r["sample_token_ids"]]
    torch.testing.assert_close(
        score_token_ids(single, queries, responses),
        score_token_ids(double, queries, responses),
        rtol=0,
        atol=1e-3,
    )  # normalized rewards (gain and bias included)

    # PPO against the same reward model: rollouts, advantages and updates alike.
    reward = tmp_path / "rm-1"
    launch.execute(policy_spec(tiny_model_dir, reward, tmp_path / "ppo-1"))
    torchrun(policy_spec(tiny_model_dir, reward, tmp_path / "ppo-2"), tmp_path / "run-ppo")
    one_state = torch.load(latest_checkpoint(tmp_path / "ppo-1") / "state.pt", weights_only=False)
    two_state = torch.load(latest_checkpoint(tmp_path / "ppo-2") / "state.pt", weights_only=False)
    assert [h["episodes"] for h in two_state["history"]] == [16.0, 32.0]
    for mine, theirs in zip(one_state["history"], two_state["history"], strict=True):
        for key in ("score", "kl", "response_length", "policy_loss", "value_loss", "entropy"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-3, abs=1e-5), key
    one_weights = load_file(latest_checkpoint(tmp_path / "ppo-1") / "trainable.safetensors")
    two_weights = load_file(latest_checkpoint(tmp_path / "ppo-2") / "trainable.safetensors")
    for name, weight in one_weights.items():
        if name.endswith("weight"):
            torch.testing.assert_close(weight, two_weights[name], rtol=1e-3, atol=1e-4)
    # What the policies produce: log-probs of the same tokens.
    tokens = torch.tensor([[5, 17, 33, 41, 8, 90, 12, 7]])
    logits = [
        load_model(str(latest_checkpoint(tmp_path / run) / "model"))(tokens).logits
        for run in ("ppo-1", "ppo-2")
    ]
    torch.testing.assert_close(
        logits[0].log_softmax(-1), logits[1].log_softmax(-1), rtol=0, atol=1e-3
    )
    base = load_model(str(tiny_model_dir))(tokens).logits
    assert not torch.allclose(base, logits[0], atol=1e-3)  # PPO moved the policy
