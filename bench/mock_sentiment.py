"""The paper's mock-sentiment check, online, on the embedded model (CPU budget).

A simulated labeler prefers the most positive of K samples by VADER (labeling.simulation);
the full loop runs through a real Celery worker (reward-model retrains at the schedule's
thresholds, PPO chunks, new comparisons from each promoted version, only responses that ended).
The task uses the shipped ``cpu-small`` preset as it is (only the seeds change with --seed).

Reported: mean VADER sentiment of policy samples on held-out (eval) prompts before and after,
each with its standard error over ``--eval-samples`` samples; PPO trained directly on the true
VADER score for the same episodes (the upper bound) and the ratio of gains; the KL to the
original policy; each reward model's prospective accuracy (on the labels that arrived after it
was trained) against its label count; the fraction of labels whose best sample was tied; wall
time. Figures and commands: bench/README.md.

    (DATABASE_URL defaults to .../preferenceloop_bench_loop on 127.0.0.1; Redis on loopback)
    OMP_NUM_THREADS=1 .venv/bin/python bench/mock_sentiment.py --seed 0
    ... --labels 96 --n0 32 --episodes 64 --chunk 32 --retrains 2 --eval-samples 32  # a check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from label_to_policy import DEFAULT_DB, prepare_environment, run_loop_until

OPENINGS = [
    "The weather this morning",
    "My neighbor's dog",
    "The new restaurant downtown",
    "Yesterday at the office",
    "The movie we watched",
    "Our trip to the mountains",
    "The old library",
    "My first day at school",
    "The football game",
    "The concert last night",
    "The train ride home",
    "Grandma's kitchen",
    "The city park",
    "The science fair",
    "Our new apartment",
    "The birthday party",
    "The long meeting",
    "The village market",
    "The summer holidays",
    "The rainy afternoon",
    "The book I read",
    "The small cafe",
    "The museum visit",
    "My brother's wedding",
    "The garden in spring",
    "The last exam",
    "The road trip",
    "The beach at sunset",
    "The winter storm",
    "The new phone",
    "The job interview",
    "The hospital waiting room",
    "The school play",
    "The cooking class",
    "The camping weekend",
    "The flight to Paris",
    "The family dinner",
    "The hiking trail",
    "The piano lesson",
    "The football coach",
]


def kl_to_base(model: Any, base_path: str, samples: list[Any], temperature: float) -> list[float]:
    """Per sample: sum over its response tokens of log pi(y_t) - log rho(y_t), both at the
    sampling temperature, as PPO's penalty counts it (an unbiased estimate of KL(pi || rho)
    per response, since the responses were sampled from pi)."""
    import torch

    from training.ml.losses import logprobs_from_logits
    from training.ml.models import PolicyWithValue, load_model, load_tokenizer
    from training.ml.sampling import pad_left, pad_right

    pad_id = int(load_tokenizer(base_path).pad_token_id or 0)
    pair = PolicyWithValue(model, reference=load_model(base_path))
    kls: list[float] = []
    with torch.no_grad():
        for start in range(0, len(samples), 8):
            batch = samples[start : start + 8]
            query_ids, query_mask = pad_left([s.query_token_ids for s in batch], pad_id)
            response_ids, mask = pad_right(
                [r for s in batch for r in s.response_token_ids], pad_id
            )  # (B*K, R)
            rows = []
            for reference in (False, True):
                logits, _ = pair.logits_and_values(
                    query_ids, query_mask, response_ids, mask, temperature, False, reference
                )
                rows.append((logprobs_from_logits(logits, response_ids) * mask).sum(1))  # (B*K,)
            kls.extend((rows[0] - rows[1]).tolist())
    return kls


def sentiment_of_version(
    path: str, prompts: list[str], config: Any, n: int, seed: int, base_path: str | None = None
) -> dict[str, float]:
    """Mean VADER compound of ``n`` samples from the model at ``path`` on ``prompts`` (K per
    prompt pass), its standard error, the fraction of samples that ended and, given the base
    model, the mean KL to it of those samples with its standard error."""
    import torch

    from labeling.textstats import sentiment
    from training.ml.models import load_model, load_tokenizer
    from training.ml.sampling import sample_responses

    model, tokenizer = load_model(path), load_tokenizer(path)
    k = config.k
    queries = [prompts[i % len(prompts)] for i in range(math.ceil(n / k))]
    samples = sample_responses(
        model, tokenizer, queries, config, generator=torch.Generator().manual_seed(1234 + seed)
    )
    scores = [sentiment(r) for s in samples for r in s.responses][:n]
    ended = [e for s in samples for e in s.ended][:n]
    result = {
        "mean": statistics.fmean(scores),
        "se": statistics.stdev(scores) / math.sqrt(len(scores)),
        "n": len(scores),
        "ended": sum(ended) / len(ended),
    }
    if base_path is not None:
        kls = kl_to_base(model, base_path, samples, config.temperature)[:n]
        result.update(kl=statistics.fmean(kls), kl_se=statistics.stdev(kls) / math.sqrt(len(kls)))
    return result


class VaderScorer:
    """PPO's Scorer from the true preference: VADER compound of the decoded response."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, query_ids: list[list[int]], response_ids: list[list[int]]) -> Any:
        import torch

        from labeling.textstats import sentiment

        texts = self.tokenizer.batch_decode(response_ids)
        return torch.tensor([sentiment(t) * 3 for t in texts])  # ~ unit-variance scale


def tied_fraction(task: Any) -> float:
    """Labels whose comparison's highest VADER score is shared by two or more samples."""
    from labeling.textstats import sentiment

    ties = total = 0
    for label in task.labels.select_related("comparison"):
        scores = [sentiment(s) for s in label.comparison.samples]
        ties += scores.count(max(scores)) > 1
        total += 1
    return ties / max(1, total)


def gain(after: dict[str, float], before: dict[str, float]) -> tuple[float, float]:
    """Difference of two independent means and its standard error."""
    return after["mean"] - before["mean"], math.hypot(after["se"], before["se"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--model", default="embedded:smollm2-135m")
    parser.add_argument("--labels", type=int, default=1000, help="label budget (N), <= 2000")
    parser.add_argument("--n0", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--retrains", type=int, default=8)
    parser.add_argument("--eval-samples", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=90, help="give up after this")
    parser.add_argument("--seed", type=int, default=0, help="the seeds of labeler, RM and PPO")
    parser.add_argument("--skip-upper-bound", action="store_true")
    parser.add_argument(
        "--settings", default='{"preset": "cpu-small"}', help="the task's training settings"
    )
    args = parser.parse_args()
    assert args.labels <= 2000
    started = time.monotonic()
    deadline = started + args.minutes * 60
    settings = json.loads(args.settings)
    for part in ("reward", "ppo"):
        settings.setdefault(part, {})["seed"] = args.seed
    with tempfile.TemporaryDirectory(prefix="mock-sentiment-") as tmp:
        work = Path(tmp)
        prepare_environment(args.database_url, args.broker, work / "artifacts")
        from django.contrib.auth import get_user_model

        from labeling.models import Prompt, Task, TaskLabeler
        from labeling.simulation import prefer_sentiment
        from training.model_cache import policy_model_path
        from training.models import PolicyVersion, RewardModelVersion, TrainingRun
        from training.task_settings import training_config

        task = Task.objects.create(
            name=f"mock sentiment {time.time():.0f} seed {args.seed}",
            status="active",
            base_model=args.model,
            k=4,
            query_length=16,
            response_length=12,
            truncation_min_position=4,
            temperature=0.7,
            label_budget=args.labels,
            training_settings=settings,
            schedule={
                "n0": args.n0,
                "n": args.labels,
                "episodes": args.episodes,
                "retrains": args.retrains,
                "chunk_episodes": args.chunk,
                "buffer": 32,
            },
        )
        for i, text in enumerate(OPENINGS):
            Prompt.objects.create(task=task, text=text, split="eval" if i % 5 == 4 else "train")
        labeler, _ = get_user_model().objects.get_or_create(username=f"vader-{task.pk}")
        TaskLabeler.objects.create(task=task, labeler=labeler)
        run_loop_until(
            task, labeler, prefer_sentiment, seed=args.seed, labels=args.labels,
            episodes=args.episodes, deadline=deadline, work=work,
        )  # fmt: skip
        loop_seconds = time.monotonic() - started
        config = training_config(task)
        eval_sampling = dataclasses.replace(config.sampling, batch_size=16)
        eval_prompts = list(task.prompts.filter(split="eval").values_list("text", flat=True))
        final = PolicyVersion.objects.filter(task=task).order_by("-number").first()
        base_path = policy_model_path(task, None)
        n, seed = args.eval_samples, args.seed
        before = sentiment_of_version(base_path, eval_prompts, eval_sampling, n, seed)
        after = sentiment_of_version(
            policy_model_path(task, final), eval_prompts, eval_sampling, n, seed, base_path
        )
        runs = TrainingRun.objects.filter(task=task, kind="policy", status="succeeded")
        last_run = runs.order_by("-pk").first()
        loop_gain, loop_se = gain(after, before)
        result: dict[str, Any] = {
            "model": args.model,
            "seed": args.seed,
            "training_settings": task.training_settings,
            "labels_used": task.labels.count(),
            "tied_fraction": round(tied_fraction(task), 3),
            "policy_versions": final.number if final else 0,
            "episodes": final.episodes if final else 0,
            "sentiment_before": before,
            "sentiment_after": after,
            "gain": round(loop_gain, 4),
            "gain_se": round(loop_se, 4),
            "kl_on_eval_samples": (round(after["kl"], 3), round(after["kl_se"], 3)),
            "kl_at_last_batch": (
                last_run.metrics[-1].get("kl") if last_run and last_run.metrics else None
            ),
            "reward_models": [
                {
                    "version": rm.number,
                    "labels": rm.label_count,
                    "trained_on": rm.metrics.get("labels_trained"),
                    "prospective_accuracy": rm.metrics.get("prospective_accuracy"),
                    "prospective_labels": rm.metrics.get("prospective_labels"),
                    "seconds": round(rm.metrics.get("seconds") or 0),
                }
                for rm in RewardModelVersion.objects.filter(task=task).order_by("number")
            ],
            "ended_fraction_per_version": {
                v.number: v.ended_fraction
                for v in PolicyVersion.objects.filter(task=task).order_by("number")
            },
            "loop_wall_seconds": round(loop_seconds),
            "timed_out": time.monotonic() > deadline,
        }
        print(json.dumps(result, indent=2), flush=True)
        if not args.skip_upper_bound and final is not None:
            from training.ml.checkpoint import latest_model_dir
            from training.ml.models import load_tokenizer
            from training.ml.ppo import train_policy

            ub_started = time.monotonic()
            out = work / "upper-bound"
            config.ppo.total_episodes = max(args.episodes, config.ppo.batch_size)
            history = train_policy(
                args.model,
                VaderScorer(load_tokenizer(base_path)),
                [p.text for p in task.prompts.filter(split="train")],
                out,
                config=config.ppo,
                sampling=config.sampling,
                episodes=final.episodes,
            )
            ub_after = sentiment_of_version(
                str(latest_model_dir(out)), eval_prompts, eval_sampling, n, seed, base_path
            )
            ub_gain, ub_se = gain(ub_after, before)
            result.update(
                upper_bound_sentiment_after=ub_after,
                upper_bound_gain=round(ub_gain, 4),
                upper_bound_gain_se=round(ub_se, 4),
                upper_bound_gain_in_se=round(ub_gain / ub_se, 1),
                upper_bound_kl_on_eval_samples=(
                    round(ub_after["kl"], 3),
                    round(ub_after["kl_se"], 3),
                ),
                upper_bound_kl_at_last_batch=history[-1]["kl"] if history else None,
                upper_bound_seconds=round(time.monotonic() - ub_started),
                ratio_of_gains=round(loop_gain / ub_gain, 3) if abs(ub_gain) > 1e-6 else None,
            )
        result["total_wall_seconds"] = round(time.monotonic() - started)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
