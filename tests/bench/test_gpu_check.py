"""bench/gpu_check.sh: the CPU dry run (``--device cpu --tiny``) that CI makes of the GPU check,
and the peak table and MFU arithmetic it prints."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHASES = (
    "sampling (K=4",
    "reward model step (8 labels x K=4)",
    "PPO rollout (16 episodes",
    "PPO epochs fwd+bwd (4 x 16 episodes)",
    "PPO step (rollout + epochs)",
)


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10G", 70.0),
        ("NVIDIA A10", 125.0),
    ],
)
def test_peak_from_the_gpu_name(name, peak):
    assert gpu_check().peak_tflops(name, None)[0] == peak


def test_peak_given_by_flag_wins_and_unknown_names_have_none():
    module = gpu_check()
    assert module.peak_tflops("NVIDIA H100 80GB HBM3", 500.0) == (500.0, "--peak-tflops")
    assert module.peak_tflops("cpu", None)[0] is None


def test_a_row_is_tokens_and_flops_over_seconds():
    row = gpu_check().row("x", tokens=1000, flops=6e12, seconds=2.0)
    assert row["tokens_per_second"] == 500 and row["tflops"] == 3.0


@pytest.mark.slow
def test_cpu_dry_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu", "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("GPU check on cpu: peak n/a TFLOP/s")
    assert "tiny GPT-2 with random weights" in lines[0] and "bf16 autocast off" in lines[0]
    for phase in PHASES:
        assert any(line.startswith(phase) for line in lines), phase
    summary = json.loads(lines[-1])
    assert summary["device"] == "cpu" and summary["peak_tflops"] is None
    assert [row["phase"].split(" (")[0] for row in summary["phases"]] == [
        "sampling", "reward model step", "PPO rollout", "PPO epochs fwd+bwd", "PPO step",
    ]  # fmt: skip
    for row in summary["phases"]:
        assert row["tokens_per_second"] > 0 and row["tflops"] > 0 and row["mfu"] is None
    assert list(tmp_path.iterdir()) == []  # the random model's files are gone
