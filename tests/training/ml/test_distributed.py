import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
