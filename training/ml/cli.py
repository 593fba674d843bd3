"""Command line: ``python -m training.ml.cli {reward,policy,sample} ...`` (tqdm progress bars).

    reward --labels LABELS.jsonl --base MODEL --out DIR [--queries FILE] [--init-from DIR]
    policy --base MODEL --reward DIR --queries FILE --out DIR [--episodes N]
    sample --model MODEL_OR_POLICY_DIR --queries FILE -k 4 [--out FILE.jsonl]

Every command takes ``--preset {cpu-tiny,cpu-small,paper}`` (default cpu-small) and
``--config FILE.json`` (overrides, same JSON as TrainingConfig.from_dict). Query files hold
one query per line, or JSONL objects with a "query" (or "text") field. Under ``torchrun``
reward and policy training run data-parallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .config import TrainingConfig
from .presets import PRESETS


def read_queries(path: str | Path) -> list[str]:
    queries = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            record = json.loads(line)
            queries.append(record.get("query", record.get("text")))
        else:
            queries.append(line)
    return queries


def _config(args: argparse.Namespace) -> TrainingConfig:
    data = json.loads(Path(args.config).read_text()) if args.config else {}
    return TrainingConfig.from_dict(data, base=args.preset)


def _bar(total: int, unit: str, enabled: bool) -> tqdm:
    return tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True)


def cmd_reward(args: argparse.Namespace) -> dict[str, Any]:
    from . import distributed
    from .labels import read_labels_jsonl
    from .reward import train_reward_model

    config = _config(args)
    labels = read_labels_jsonl(args.labels)
    bar = _bar(0, "step", distributed.is_main())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    result = train_reward_model(
        labels,
        args.base,
        args.out,
        config.reward,
        config.sampling,
        normalization_queries=read_queries(args.queries) if args.queries else None,
        init_from=args.init_from,
        progress=progress,
    )
    bar.close()
    return {
        "out_dir": str(result.out_dir),
        "gain": result.gain,
        "bias": result.bias,
        **result.metrics,
    }


def cmd_policy(args: argparse.Namespace) -> dict[str, Any]:
    from . import distributed
    from .ppo import train_policy

    config = _config(args)
    bar = _bar(0, "episode", distributed.is_main())

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        bar.total = total
        bar.update(done - bar.n)
        bar.set_postfix(
            score=f"{metrics['score']:.3f}",
            kl=f"{metrics['kl']:.2f}",
            beta=f"{metrics['beta']:.3f}",
        )

    history = train_policy(
        args.base,
        args.reward,
        read_queries(args.queries),
        args.out,
        config.ppo,
        config.sampling,
        episodes=args.episodes,
        progress=progress,
        checkpoint_every=args.checkpoint_every,
    )
    bar.close()
    return history[-1] if history else {}


def cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from .checkpoint import latest_model_dir
    from .models import load_model_and_tokenizer
    from .sampling import sample_responses

    config = _config(args)
    sampling = dataclasses.replace(config.sampling, k=args.k)
    policy_model = latest_model_dir(args.model) if Path(args.model).is_dir() else None
    model, tokenizer = load_model_and_tokenizer(str(policy_model or args.model))
    queries = read_queries(args.queries)
    bar = _bar(len(queries), "query", True)
    samples = sample_responses(
        model,
        tokenizer,
        queries,
        sampling,
        generator=torch.Generator().manual_seed(args.seed),
        progress=lambda done, total: bar.update(done - bar.n),
    )
    bar.close()
    lines = "".join(json.dumps(dataclasses.asdict(sample)) + "\n" for sample in samples)
    if args.out:
        Path(args.out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)
    return {"queries": len(samples), "k": sampling.k}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.ml.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--preset", choices=PRESETS, default="cpu-small")
        sub.add_argument("--config", help="JSON file of TrainingConfig overrides")

    reward = commands.add_parser("reward", help="train a reward model on best-of-K labels")
    reward.add_argument("--labels", required=True, help="paper-format JSONL export")
    reward.add_argument("--base", required=True, help="HF id, directory or embedded:smollm2-135m")
    reward.add_argument("--out", required=True)
    reward.add_argument("--queries", help="queries to sample from the base for normalization")
    reward.add_argument("--init-from", help="warm-start from this reward model directory")
    common(reward)
    reward.set_defaults(run=cmd_reward)

    policy = commands.add_parser("policy", help="train / resume the policy with PPO")
    policy.add_argument("--base", required=True)
    policy.add_argument("--reward", required=True, help="reward model directory")
    policy.add_argument("--queries", required=True)
    policy.add_argument("--out", required=True, help="policy directory (resumed if present)")
    policy.add_argument("--episodes", type=int, help="episodes in this chunk (default: all)")
    policy.add_argument("--checkpoint-every", type=int, default=0)
    common(policy)
    policy.set_defaults(run=cmd_policy)

    sample = commands.add_parser("sample", help="sample K responses per query")
    sample.add_argument("--model", required=True, help="model name/dir or a policy directory")
    sample.add_argument("--queries", required=True)
    sample.add_argument("-k", type=int, default=4)
    sample.add_argument("--out", help="JSONL output (default stdout)")
    sample.add_argument("--seed", type=int, default=0)
    common(sample)
    sample.set_defaults(run=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import distributed

    distributed.init_from_environment()
    try:
        summary = args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if distributed.is_main():
        print(json.dumps(summary, default=str), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
