"""Which reward-model preset learns the VADER preference per CPU second? An offline check.

Samples N comparisons of 4 ended responses from the embedded model on the mock-sentiment
prompts (16-token queries, 12-token responses, ending at a period from token 4; 14 candidates
per prompt, the first 4 that ended), labels each by VADER like the simulated labeler (the
first of tied best samples), trains each reward-model variant on the first 3/4 and reports
K-way accuracy on the last 1/4 (chance 0.25) and seconds. Figures: bench/README.md.

    OMP_NUM_THREADS=1 .venv/bin/python bench/reward_presets.py --n 400 \\
        --variants '{"top2": {"trainable_layers": 2, "learning_rate": 1e-3},
                     "lora": {"lora_rank": 8, "learning_rate": 5e-4}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = "embedded:smollm2-135m"


def sample_comparisons(n: int, cache: Path) -> list[dict]:
    import torch
    from mock_sentiment import OPENINGS

    from training.ml.config import SamplingConfig
    from training.ml.models import load_model, load_tokenizer
    from training.ml.sampling import sample_responses

    if cache.exists():
        return [json.loads(line) for line in cache.open()]
    model, tokenizer = load_model(MODEL), load_tokenizer(MODEL)
    train = [o for i, o in enumerate(OPENINGS) if i % 5 != 4]
    config = SamplingConfig(k=14, query_length=16, response_length=12, truncate_after=4)
    generator = torch.Generator().manual_seed(0)
    rows: list[dict] = []
    while len(rows) < n:
        queries = [train[(len(rows) + i) % len(train)] for i in range(8)]
        for s in sample_responses(model, tokenizer, queries, config, generator=generator):
            ended = [i for i, e in enumerate(s.ended) if e][:4]
            if len(ended) == 4:
                rows.append(
                    {
                        "query": s.query,
                        "query_token_ids": s.query_token_ids,
                        "samples": [s.responses[i] for i in ended],
                        "sample_token_ids": [s.response_token_ids[i] for i in ended],
                    }
                )
        print(f"sampled {len(rows)} comparisons", flush=True)
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    return rows[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--variants", required=True, help="JSON: name -> RewardConfig fields")
    parser.add_argument("--work", default="var/reward-presets")
    args = parser.parse_args()
    from labeling.textstats import sentiment
    from training.ml.config import RewardConfig, SamplingConfig
    from training.ml.reward import evaluate_reward_model, train_reward_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = sample_comparisons(args.n, work / f"comparisons-{args.n}.jsonl")
    labels, ties = [], 0
    for row in rows:
        scores = [sentiment(t) for t in row["samples"]]
        best = max(range(4), key=lambda i: scores[i])
        ties += scores.count(scores[best]) > 1
        label = {k: row[k] for k in ("query", "query_token_ids", "sample_token_ids")}
        label.update({"best": best, **{f"sample{i}": t for i, t in enumerate(row["samples"])}})
        labels.append(label)
    print(f"tied best: {ties / len(rows):.3f}")
    test, train = labels[: len(labels) // 4], labels[len(labels) // 4 :]
    sampling = SamplingConfig(k=4, query_length=16, response_length=12, truncate_after=4)
    for name, fields in json.loads(args.variants).items():
        config = RewardConfig(
            **{"batch_size": 8, "micro_batch_size": 8, "normalization_samples": 16, **fields}
        )
        started = time.perf_counter()
        result = train_reward_model(train, MODEL, work / f"rm-{name}", config, sampling)
        held_out = evaluate_reward_model(work / f"rm-{name}", test, sampling)
        print(
            json.dumps(
                {
                    "variant": name,
                    **fields,
                    "train_labels": len(train),
                    "train_accuracy": round(result.metrics["train_accuracy"], 3),
                    "test_labels": int(held_out["labels"]),
                    "test_accuracy": held_out["accuracy"],
                    "seconds": round(time.perf_counter() - started),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
