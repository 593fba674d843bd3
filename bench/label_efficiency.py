"""Label efficiency: reward-model test accuracy against labels, comparisons chosen ``uniform``
vs by ``uncertainty`` (training/ml/selection.py), with simulated labelers, offline.

1. Pool: the embedded model samples ``--responses`` ended responses (the sampler's rule:
   labelers see only responses that ended) per item for ``--pool + --test`` items, on the
   mock-sentiment openings and the demo's story prompts (cached JSONL, resumable).
2. The frozen trunk's hidden states at the input of the top ``--trainable-layers`` blocks
   (the cpu-small reward preset trains the top 2 blocks, the final norm and the head) are
   computed once per (prompt, response); every retrain then runs only the top blocks + head.
3. Per preference (VADER sentiment, the demo's labeler; and length, longest sample), strategy
   and seed: labels are acquired in rounds up to each of ``--counts``; after each round the
   reward model is retrained the cpu-small way (warm start, the round's new labels plus as
   many replayed older ones, one pass, linear LR decay, the paper's K-way loss) and scored on
   the same ``--test`` uniformly drawn comparisons (the first K ended responses of held-out
   items). ``uniform`` labels random items' first K responses; ``uncertainty`` keeps
   ``--uniform-share`` uniform (as the loop does) and picks the rest among ``--pool-factor``
   times as many random unlabeled items by the entropy of the reward model's K-way choice
   distribution over their best K-set; ``disagreement`` the same way by an ensemble's
   disagreement (``--members`` heads over the shared top blocks, each on its own bootstrap
   weights: the mutual information between choice and member, which is 0 where the members
   agree, ties included). The selective strategies' first round is uniform (no reward model).

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python bench/label_efficiency.py --seeds 3

Prints a table (mean and standard error over seeds), writes ``label-efficiency.svg`` and
``results.jsonl`` under ``--work``, and the labels uncertainty needs to reach uniform's final
accuracy. Curves already in results.jsonl are not run again (a stopped run resumes).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()  # labeling.simulation's preferences (no database is used)

import torch  # noqa: E402
from label_efficiency_model import (  # noqa: E402
    MODEL,
    Example,
    Features,
    K,
    TopBlocksRewardModel,
    accuracy,
    retrain,
    trunk_inputs,
)
from label_efficiency_report import DISAGREEMENT, report  # noqa: E402
from tqdm import tqdm  # noqa: E402

from labeling.simulation import PREFERENCES  # noqa: E402
from labeling.textstats import sentiment  # noqa: E402
from training.ml.config import SamplingConfig  # noqa: E402
from training.ml.ended import sample_ended_comparisons  # noqa: E402
from training.ml.labels import bounded_replay  # noqa: E402
from training.ml.models import load_model, load_tokenizer  # noqa: E402
from training.ml.selection import (  # noqa: E402
    UNCERTAINTY,
    rank_by_disagreement,
    rank_by_uncertainty,
    uniform_picks,
    uniform_quota,
)

SCORES: dict[str, Callable[[str], float]] = {
    "sentiment": sentiment,
    "length": lambda text: float(len(text.strip())),
}
"""What each simulated labeler maximizes (labeling/simulation.py): to count tied best samples,
where its choice is the first shown and carries nothing a reward model can learn."""


def prompts() -> list[str]:
    from mock_sentiment import OPENINGS

    demo = ROOT / "research" / "demo"
    stories = [
        json.loads(line)["text"]
        for f in ("prompts", "eval_prompts")
        for line in (demo / f"{f}.jsonl").open()
        if line.strip()
    ]
    return [*OPENINGS, *stories]


def sample_pool(items: int, responses: int, path: Path, seed: int = 0) -> list[dict[str, Any]]:
    """``items`` rows of a prompt and ``responses`` ended responses each (appended to ``path``
    as they come, so an interrupted run keeps what it sampled)."""
    rows = [json.loads(line) for line in path.open()] if path.exists() else []
    if len(rows) >= items:
        return rows[:items]
    model, tokenizer = load_model(MODEL, device="cpu"), load_tokenizer(MODEL)
    config = SamplingConfig(k=responses, query_length=32, response_length=12, truncate_after=4)
    texts, rng = prompts(), random.Random(seed + len(rows))
    generator = torch.Generator().manual_seed(seed + len(rows))
    bar = tqdm(total=items, initial=len(rows), desc="pool items", unit="item")
    candidates = ended = 0
    with path.open("a") as out:
        while len(rows) < items:
            # 4 copies of each prompt per call: copies share their ended responses.
            queries = [q for q in rng.sample(texts, 4) for _ in range(4)]
            result = sample_ended_comparisons(
                model, tokenizer, queries, config, generator, candidates=2 * responses
            )
            candidates, ended = candidates + result.candidates, ended + result.ended
            for _, s in result.kept[: items - len(rows)]:
                row = {
                    "query": s.query,
                    "query_token_ids": s.query_token_ids,
                    "responses": s.responses,
                    "response_token_ids": s.response_token_ids,
                }
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                bar.update(1)
            out.flush()
            bar.set_postfix(ended=f"{ended / candidates:.2f}")
    bar.close()
    return rows


def label(
    rows: list[dict[str, Any]],
    offsets: list[int],
    preference: str,
    item: int,
    chosen: tuple[int, ...],
) -> Example:
    """The simulated labeler's choice among the item's ``chosen`` responses (shown in
    sampling order; ties go to the first shown, as labeling/simulation.py breaks them)."""
    row = rows[item]
    best = PREFERENCES[preference](
        row["query"], [row["responses"][j] for j in chosen], random.Random(item)
    )
    return tuple(offsets[item] + j for j in chosen), best


def tied(rows: list[dict[str, Any]], preference: str, item: int, chosen: tuple[int, ...]) -> bool:
    """Whether two or more of the shown samples share the labeler's best score."""
    scores = [SCORES[preference](rows[item]["responses"][j]) for j in chosen]
    return scores.count(max(scores)) > 1


def run_curve(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    features: Features,
    template: TopBlocksRewardModel,
    preference: str,
    strategy: str,
    seed: int,
) -> dict[str, Any]:
    c, pool, offsets = args.responses, range(args.pool), features.offsets
    rng = random.Random(f"{seed}-{preference}")  # round 1 is the same for both strategies
    torch.manual_seed(seed)
    model = copy.deepcopy(template)
    model.reset_head()
    test = [
        label(rows, offsets, preference, i, tuple(range(K))) for i in range(args.pool, len(rows))
    ]
    labeled: set[int] = set()
    old: list[Example] = []
    uniform_so_far, ties, points, started = 0, 0, [], time.perf_counter()
    for round_number, count in enumerate(args.counts):
        wanted = count - len(old)
        unlabeled = [i for i in pool if i not in labeled]
        uncertain = strategy in (UNCERTAINTY, DISAGREEMENT) and round_number > 0
        n_uniform = (
            wanted
            if not uncertain
            else uniform_quota(
                wanted=wanted,
                share=args.uniform_share,
                uniform_so_far=uniform_so_far,
                total_so_far=len(old),
            )
        )
        picks = [
            (unlabeled[i], tuple(range(K))) for i in uniform_picks(n_uniform, len(unlabeled), rng)
        ]
        uniform_so_far += len(picks)
        if wanted > n_uniform:
            rest = [i for i in unlabeled if i not in {p for p, _ in picks}]
            candidates = rng.sample(rest, min(len(rest), args.pool_factor * (wanted - n_uniform)))
            sequences = [offsets[i] + j for i in candidates for j in range(c)]
            if strategy == DISAGREEMENT:
                each = features.rewards(model, sequences, members=True)  # (n*c, E)
                per_member = each.view(len(candidates), c, -1).transpose(1, 2).tolist()
                ranked = rank_by_disagreement(per_member, K, wanted - n_uniform)
            else:
                per_item = features.rewards(model, sequences).view(len(candidates), c).tolist()
                ranked = rank_by_uncertainty(per_item, K, wanted - n_uniform)
            picks += [(candidates[r.candidate], r.responses) for r in ranked]
        new = [label(rows, offsets, preference, item, chosen) for item, chosen in picks]
        labeled.update(item for item, _ in picks)
        ties += sum(tied(rows, preference, item, chosen) for item, chosen in picks)
        retrain(
            model,
            features,
            bounded_replay(old, new, 1.0, seed * 1000 + round_number),
            seed * 1000 + round_number,
            bootstrap_seed=seed,
        )
        old += new
        points.append(
            {
                "labels": len(old),
                "accuracy": accuracy(model, features, test),
                "uniform": uniform_so_far,
                "tied": ties / len(old),
            }
        )
        print(
            f"  {preference} {strategy} seed {seed}: {len(old)} labels "
            f"({uniform_so_far} uniform, {ties} with a tied best): test accuracy "
            f"{points[-1]['accuracy']:.3f}",
            flush=True,
        )
    return {
        "preference": preference,
        "strategy": strategy,
        "members": model.head.out_features,
        "seed": seed,
        "points": points,
        "seconds": round(time.perf_counter() - started, 1),
        "test": len(test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=400, help="items labels are chosen from")
    parser.add_argument("--test", type=int, default=200, help="uniform test comparisons")
    parser.add_argument("--responses", type=int, default=6, help="ended responses per item")
    parser.add_argument("--counts", default="25,50,75,100,150,200,250")
    parser.add_argument("--preferences", default="sentiment,length")
    parser.add_argument(
        "--strategies",
        default="uniform,uncertainty",
        help="of uniform, uncertainty (entropy), disagreement (the ensemble's; --members > 1)",
    )
    parser.add_argument(
        "--members", type=int, default=1, help="reward heads (an ensemble) for every strategy"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--uniform-share", type=float, default=0.25)
    parser.add_argument("--pool-factor", type=int, default=2)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--work", default="var/label-efficiency")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.counts = [int(n) for n in args.counts.split(",")]
    if DISAGREEMENT in args.strategies.split(",") and args.members < 2:
        parser.error("disagreement needs an ensemble: --members 2 or more")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    suffix = f"-members{args.members}" if args.members > 1 else ""
    results_path = work / f"results{suffix}.jsonl"
    results = [json.loads(line) for line in results_path.open()] if results_path.exists() else []
    if not args.report_only:
        items = args.pool + args.test
        rows = sample_pool(args.pool, args.responses, work / f"pool-{args.responses}.jsonl")
        rows += sample_pool(args.test, K, work / f"test-{K}.jsonl", seed=10**6)
        hidden, lengths = trunk_inputs(
            rows,
            args.trainable_layers,
            work / f"trunk-{items}-{args.responses}-top{args.trainable_layers}.pt",
        )
        features = Features(rows, hidden, lengths)
        template = TopBlocksRewardModel(args.trainable_layers, args.members)
        done = {(r["preference"], r["strategy"], r["seed"]) for r in results}
        for seed in range(args.seeds):
            for preference in args.preferences.split(","):
                for strategy in args.strategies.split(","):
                    if (preference, strategy, seed) in done:
                        continue
                    result = run_curve(args, rows, features, template, preference, strategy, seed)
                    result["config"] = {k: v for k, v in vars(args).items() if k != "report_only"}
                    results.append(result)
                    with results_path.open("a") as out:
                        out.write(json.dumps(result) + "\n")
    report(results, work / f"label-efficiency{suffix}.svg")


if __name__ == "__main__":
    main()
