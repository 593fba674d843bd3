"""The paper's mock-sentiment check, online, on the embedded model (CPU budget).

A simulated labeler prefers the most positive sample by VADER (labeling.simulation); the full
loop runs through a real Celery worker (reward-model retrains at the schedule's thresholds, PPO
chunks, new comparisons from each promoted version). Reported: mean VADER sentiment of policy
samples on eval prompts before and after, the KL to the original policy (PPO's measure at the
last batch), reward-model held-out accuracy per version, labels used, wall time; and PPO trained
directly on the true VADER score for the same episodes (the upper bound), as a ratio of gains.

    (DATABASE_URL defaults to .../preferenceloop_bench_loop on 127.0.0.1)
    .venv/bin/python bench/mock_sentiment.py        # the recorded run: 600 labels, ~30 min
    ... --labels 96 --n0 32 --episodes 64 --chunk 32 --retrains 2          # a short check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from label_to_policy import DEFAULT_DB, label_one, prepare_environment, start_worker, wait

# The settings of the recorded run (bench/README.md): the cpu-small preset with learning rates
# that move a LoRA policy and reward model within a 60-minute CPU budget.
RECORDED_SETTINGS = (
    '{"preset": "cpu-small", "reward": {"learning_rate": 0.0005},'
    ' "ppo": {"learning_rate": 0.0003, "ppo_epochs": 4}}'
)

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


def sentiment_of_version(path: str, prompts: list[str], config: Any, n: int) -> float:
    from labeling.textstats import sentiment
    from training.ml.models import load_model, load_tokenizer
    from training.ml.sampling import sample_responses

    model, tokenizer = load_model(path), load_tokenizer(path)
    queries = [prompts[i % len(prompts)] for i in range(n)]
    import torch

    samples = sample_responses(
        model, tokenizer, queries, config, generator=torch.Generator().manual_seed(1234)
    )
    texts = [r for s in samples for r in s.responses][:n]
    return sum(sentiment(t) for t in texts) / len(texts)


class VaderScorer:
    """PPO's Scorer from the true preference: VADER compound of the decoded response."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, query_ids: list[list[int]], response_ids: list[list[int]]) -> Any:
        import torch

        from labeling.textstats import sentiment

        texts = self.tokenizer.batch_decode(response_ids)
        return torch.tensor([sentiment(t) * 3 for t in texts])  # ~ unit-variance scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--model", default="embedded:smollm2-135m")
    parser.add_argument("--labels", type=int, default=600, help="label budget (N), <= 2000")
    parser.add_argument("--n0", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--retrains", type=int, default=5)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=40, help="give up after this")
    parser.add_argument("--skip-upper-bound", action="store_true")
    parser.add_argument(
        "--settings",
        default=RECORDED_SETTINGS,
        help="the task's training settings (JSON), e.g. to raise PPO's learning rate",
    )
    args = parser.parse_args()
    assert args.labels <= 2000
    started = time.monotonic()
    deadline = started + args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="mock-sentiment-") as tmp:
        work = Path(tmp)
        prepare_environment(args.database_url, args.broker, work / "artifacts")
        from django.contrib.auth import get_user_model

        from labeling.models import Prompt, Task, TaskLabeler
        from labeling.simulation import prefer_sentiment
        from training import selectors, services
        from training.model_cache import policy_model_path
        from training.models import PolicyVersion, RewardModelVersion, TrainingRun
        from training.task_settings import training_config

        task = Task.objects.create(
            name=f"mock sentiment {time.time():.0f}",
            status="active",
            base_model=args.model,
            k=4,
            query_length=16,
            response_length=12,
            truncation_min_position=4,
            temperature=0.7,
            label_budget=args.labels,
            training_settings=json.loads(args.settings),
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
        worker = start_worker(work / "worker.log", work)
        stop = threading.Event()

        def label_forever() -> None:
            import random

            rng = random.Random(0)
            while not stop.is_set():
                if task.labels.count() >= args.labels or not label_one(
                    task, labeler, lambda p, s: prefer_sentiment(p, s, rng)
                ):
                    time.sleep(0.5)

        try:
            services.tick(task_id=task.pk)
            labeling = threading.Thread(target=label_forever, daemon=True)
            labeling.start()

            def finished() -> bool:
                head = selectors.ppo_head(task_id=task.pk)
                return bool(head and head.episodes >= args.episodes) or time.monotonic() > deadline

            wait(finished, args.minutes * 60 + 60, "the end of PPO")
            stop.set()
        finally:
            stop.set()
            worker.terminate()
            worker.wait(timeout=60)
        loop_seconds = time.monotonic() - started
        config = training_config(task)
        eval_prompts = list(task.prompts.filter(split="eval").values_list("text", flat=True))
        final = PolicyVersion.objects.filter(task=task).order_by("-number").first()
        base_path = policy_model_path(task, None)
        before = sentiment_of_version(base_path, eval_prompts, config.sampling, args.eval_samples)
        after = sentiment_of_version(
            policy_model_path(task, final), eval_prompts, config.sampling, args.eval_samples
        )
        last_policy_run = TrainingRun.objects.filter(
            task=task, kind="policy", status="succeeded"
        ).first()
        result: dict[str, Any] = {
            "model": args.model,
            "training_settings": task.training_settings,
            "labels_used": task.labels.count(),
            "policy_versions": final.number if final else 0,
            "episodes": final.episodes if final else 0,
            "sentiment_before": round(before, 4),
            "sentiment_after": round(after, 4),
            "kl_to_original": (
                last_policy_run.metrics[-1].get("kl")
                if last_policy_run and last_policy_run.metrics
                else None
            ),
            "reward_models": [
                {
                    "version": rm.number,
                    "labels": rm.label_count,
                    "held_out_accuracy": rm.metrics.get("held_out_accuracy"),
                }
                for rm in RewardModelVersion.objects.filter(task=task).order_by("number")
            ],
            "loop_wall_seconds": round(loop_seconds),
            "timed_out": time.monotonic() > deadline,
        }
        if not args.skip_upper_bound and final is not None:
            from training.ml.models import load_tokenizer
            from training.ml.ppo import train_policy

            ub_started = time.monotonic()
            out = work / "upper-bound"
            config.ppo.total_episodes = max(args.episodes, config.ppo.batch_size)
            train_policy(
                args.model,
                VaderScorer(load_tokenizer(base_path)),
                [p.text for p in task.prompts.filter(split="train")],
                out,
                config=config.ppo,
                sampling=config.sampling,
                episodes=final.episodes,
            )
            from training.ml.checkpoint import latest_model_dir

            ub_after = sentiment_of_version(
                str(latest_model_dir(out)), eval_prompts, config.sampling, args.eval_samples
            )
            gain = after - before
            ub_gain = ub_after - before
            result.update(
                upper_bound_sentiment_after=round(ub_after, 4),
                upper_bound_seconds=round(time.monotonic() - ub_started),
                ratio_of_gains=round(gain / ub_gain, 3) if abs(ub_gain) > 1e-6 else None,
            )
        result["total_wall_seconds"] = round(time.monotonic() - started)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
