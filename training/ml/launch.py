"""A training run's body, in the worker's process or as processes of their own.

A worker (training/launcher.py) describes the run in a spec and either calls :func:`execute`
in its own process, or writes the spec to ``SPEC.json`` and starts
``torchrun --nproc-per-node N -m training.ml.launch SPEC.json``: one process per GPU (NCCL)
or N gloo processes on CPU, training data-parallel (DDP). The spec (JSON)::

    {"kind": "reward", "config": {TrainingConfig}, "base": str, "out_dir": str,
     "labels": [paper-format records], "normalization_queries": [str] | null,
     "init_from": str | null,
     "evaluate": {"directory": str, "labels": [records]} | null}   # prospective accuracy
    {"kind": "policy", "config": {TrainingConfig}, "base": str, "reward": str,
     "queries": [str] | [[int]], "out_dir": str, "episodes": int, "checkpoint_every": int}

Under torchrun, beside SPEC.json: every rank writes ``rank-<r>.pid``; rank 0 appends progress
events to ``progress.jsonl`` (one JSON object a line: {"done", "total", "metrics"?}) and
writes ``result.json`` (what :func:`execute` returns) when the body is done. Each rank exits
when the process named by ``PREFERENCE_LOOP_PARENT_PID`` (the worker) is gone, so a worker
killed by its time limit leaves nothing training on the GPUs. No Django here.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import TrainingConfig

PROGRESS, RESULT, PARENT_PID = "progress.jsonl", "result.json", "PREFERENCE_LOOP_PARENT_PID"
Progress = Callable[[dict[str, Any]], None]
"""Called with each progress event: {"done": n, "total": n, "metrics": {...}} (PPO)."""


def execute(spec: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Run the body a spec describes (on every rank when data-parallel); what it made."""
    config = TrainingConfig.from_dict(spec["config"])
    report = progress or (lambda event: None)
    if spec["kind"] == "reward":
        return _reward(spec, config, report)
    if spec["kind"] == "policy":
        return _policy(spec, config, report)
    raise ValueError(f"unknown run kind {spec['kind']!r}")


def _reward(spec: dict[str, Any], config: TrainingConfig, report: Progress) -> dict[str, Any]:
    from .reward import evaluate_reward_model, train_reward_model

    result: dict[str, Any] = {}
    evaluate = spec.get("evaluate")
    if evaluate and evaluate.get("labels"):
        # The previous model on the labels new since it was trained: its prospective accuracy.
        result["prospective"] = evaluate_reward_model(
            evaluate["directory"], evaluate["labels"], config.sampling
        )
    trained = train_reward_model(
        spec["labels"],
        spec["base"],
        spec["out_dir"],
        config=config.reward,
        sampling=config.sampling,
        normalization_queries=spec.get("normalization_queries"),
        init_from=spec.get("init_from"),
        progress=lambda done, total: report({"done": done, "total": total}),
    )
    result.update(
        out_dir=str(trained.out_dir),
        gain=trained.gain,
        bias=trained.bias,
        metrics=trained.metrics,
    )
    return result


def _policy(spec: dict[str, Any], config: TrainingConfig, report: Progress) -> dict[str, Any]:
    from .ppo import train_policy

    history = train_policy(
        spec["base"],
        spec["reward"],
        spec["queries"],
        spec["out_dir"],
        config=config.ppo,
        sampling=config.sampling,
        episodes=spec.get("episodes"),
        progress=lambda done, total, metrics: report(
            {"done": done, "total": total, "metrics": metrics}
        ),
        checkpoint_every=int(spec.get("checkpoint_every", 0)),
    )
    return {"batches": len(history), "last": history[-1] if history else {}}


def write_json_atomically(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=float))
    os.replace(tmp, path)


def progress_writer(path: Path) -> Progress:
    """Append each event to ``path`` as one JSON line, flushed (the worker tails it)."""

    def write(event: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as lines:
            lines.write(json.dumps(event, default=float) + "\n")

    return write


def watch_parent(pid: int, every: float = 2.0) -> None:
    """Exit this process as soon as process ``pid`` is gone (checked every ``every`` s)."""

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                print(f"worker process {pid} is gone: stopping", file=sys.stderr, flush=True)
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="watch-worker", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun ... -m training.ml.launch SPEC.json", file=sys.stderr)
        return 2
    spec_path = Path(args[0])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    work = spec_path.parent
    if os.environ.get(PARENT_PID):
        watch_parent(int(os.environ[PARENT_PID]))
    from . import distributed

    distributed.init_from_environment()
    (work / f"rank-{distributed.rank()}.pid").write_text(str(os.getpid()))
    main_rank = distributed.is_main()
    result = execute(spec, progress_writer(work / PROGRESS) if main_rank else None)
    if main_rank:
        write_json_atomically(work / RESULT, result)
    if distributed.world_size() > 1:
        import torch.distributed

        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
