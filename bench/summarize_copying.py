"""The paper's summarization finding, online, on the embedded model (CPU budget): labelers who
reward copying make the policy copy.

The full loop (a real Celery worker: reward-model retrains at the schedule's thresholds, PPO
chunks with the fixed KL coefficient, new comparisons from each promoted version) runs on the
news articles gensim's wheel ships (research/demo/summarization.py: imported as TL;DR queries
cut at sentence boundaries), twice at equal labels and episodes: once with a simulated labeler
who picks the most copied summary (word 3-grams found in the article, labeling.textstats), once
with one who picks the least copied (novelty). Reported per run: the copied fraction of policy
summaries of the held-out (eval) articles before (v0) and after (the last version), with
standard errors, their length and ended fraction, the KL and the reward models' prospective
accuracy. The loop must move the copied fraction the way each labeler prefers.

    # both runs side by side (one core each), after `pip install -e '.[summarization]'`:
    OMP_NUM_THREADS=1 .venv/bin/python bench/summarize_copying.py --both
    # one run (the --both children): --preference copy|novelty --database-url ... --broker ...

Figures and the exact command of the recorded run: bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from label_to_policy import prepare_environment, run_loop_until

ROOT = Path(__file__).resolve().parents[1]
DB = "postgres://preferenceloop:preferenceloop@127.0.0.1:5432/preferenceloop_summarize_{}"
BROKERS = {"copy": "redis://127.0.0.1:6379/9", "novelty": "redis://127.0.0.1:6379/10"}


def copied_of_version(
    path: str, queries: list[str], config: Any, per_query: int, seed: int
) -> dict[str, float]:
    """Copied fraction (mean, standard error) of ``per_query`` summaries per query from the
    model at ``path``, their mean length in words and the fraction that ended."""
    import torch

    from labeling.textstats import copy_fraction, words
    from training.ml.models import load_model, load_tokenizer
    from training.ml.sampling import sample_responses

    model, tokenizer = load_model(path), load_tokenizer(path)
    sampling = dataclasses.replace(config, k=per_query, batch_size=4)
    samples = sample_responses(
        model, tokenizer, queries, sampling, generator=torch.Generator().manual_seed(99 + seed)
    )
    rows = [(s.query, r, e) for s in samples for r, e in zip(s.responses, s.ended, strict=True)]
    copied = [copy_fraction(query, r) for query, r, _ in rows]
    copied_words = [copy_fraction(query, r, n=1) for query, r, _ in rows]
    ended_copied = [c for c, (_, _, e) in zip(copied, rows, strict=True) if e]
    return {
        "copied": round(statistics.fmean(copied), 4),
        "copied_se": round(statistics.stdev(copied) / math.sqrt(len(copied)), 4),
        "copied_words": round(statistics.fmean(copied_words), 4),
        "copied_words_se": round(statistics.stdev(copied_words) / math.sqrt(len(rows)), 4),
        "copied_ended_only": round(statistics.fmean(ended_copied), 4) if ended_copied else None,
        "words": round(statistics.fmean(len(words(r)) for _, r, _ in rows), 1),
        "ended": round(sum(e for *_, e in rows) / len(rows), 3),
        "n": len(rows),
    }


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + args.minutes * 60
    with tempfile.TemporaryDirectory(prefix=f"summarize-{args.preference}-") as tmp:
        work = Path(tmp)
        prepare_environment(args.database_url, args.broker, work / "artifacts")
        from django.contrib.auth import get_user_model

        from labeling.models import Task, TaskLabeler
        from labeling.services.imports import import_prompts
        from labeling.simulation import PREFERENCES
        from research.demo.summarization import SUMMARY_TASK_SETTINGS, articles_jsonl, lee_articles

        settings = {**SUMMARY_TASK_SETTINGS}
        settings.update(
            name=f"summarize {args.preference} {time.time():.0f} seed {args.seed}",
            query_length=args.query_length,
            response_length=args.response_length,
            truncation_token=args.truncate_token.replace("\\n", "\n"),
            truncation_min_position=args.truncate_after,
            labels_per_comparison=1,
            highlight_copies=False,
            label_budget=args.labels,
            training_settings={
                "preset": "cpu-summarization",
                "reward": {"seed": args.seed},
                "ppo": {"seed": args.seed},
            },
            schedule={
                "n0": args.n0,
                "n": args.labels,
                "episodes": args.episodes,
                "retrains": args.retrains,
                "chunk_episodes": args.chunk,
                "buffer": 16,
            },
        )
        task = Task.objects.create(**settings)
        stream = io.BytesIO(articles_jsonl(lee_articles(), eval_articles=args.eval_articles))
        import_prompts(task=task, stream=stream)
        labeler, _ = get_user_model().objects.get_or_create(username=f"{args.preference}-{task.pk}")
        TaskLabeler.objects.create(task=task, labeler=labeler)
        run_loop_until(
            task, labeler, PREFERENCES[args.preference], seed=args.seed, labels=args.labels,
            episodes=args.episodes, deadline=deadline, work=work,
        )  # fmt: skip
        result = report(task, args)
        result.update(
            loop_wall_seconds=round(time.monotonic() - started),
            timed_out=time.monotonic() > deadline,
        )
        return result


def report(task: Any, args: argparse.Namespace, version: int | None = None) -> dict[str, Any]:
    """Copied fraction of the eval summaries of v0 and of policy ``version`` (default: the
    newest), with what that version was trained on."""
    from training.model_cache import policy_model_path
    from training.models import PolicyVersion, RewardModelVersion, TrainingRun
    from training.task_settings import training_config

    started = time.monotonic()
    config = training_config(task)
    queries = list(task.prompts.filter(split="eval").values_list("text", flat=True))
    versions = PolicyVersion.objects.filter(task=task).order_by("-number")
    final = versions.filter(number=version).first() if version is not None else versions.first()
    assert final is not None
    before = copied_of_version(
        policy_model_path(task, None), queries, config.sampling, args.per_article, args.seed
    )
    after = copied_of_version(
        policy_model_path(task, final), queries, config.sampling, args.per_article, args.seed
    )
    last_run = TrainingRun.objects.filter(policy_version=final, kind="policy").first()
    rm = final.reward_model_version
    return {
        "preference": args.preference,
        "seed": args.seed,
        "labels_in_task": task.labels.count(),
        "episodes": final.episodes,
        "policy_version": final.number,
        "trained_against_reward_model": rm.number if rm else None,
        "labels_of_that_reward_model": rm.label_count if rm else None,
        "query_length": args.query_length,
        "response_length": args.response_length,
        "eval_articles": len(queries),
        "before": before,
        "after": after,
        "change": round(after["copied"] - before["copied"], 4),
        "change_se": round(math.hypot(after["copied_se"], before["copied_se"]), 4),
        "kl": last_run.metrics[-1].get("kl") if last_run and last_run.metrics else None,
        "reward_models": [
            {
                "version": each.number,
                "labels": each.label_count,
                "prospective_accuracy": each.metrics.get("prospective_accuracy"),
                "prospective_labels": each.metrics.get("prospective_labels"),
            }
            for each in RewardModelVersion.objects.filter(task=task).order_by("number")
        ],
        "ended_fraction_per_version": {
            v.number: v.ended_fraction
            for v in PolicyVersion.objects.filter(task=task).order_by("number")
        },
        "evaluation_seconds": round(time.monotonic() - started),
    }


def evaluate_only(args: argparse.Namespace) -> None:
    """Report on a run whose loop was stopped (its worker and artifacts left as they were)."""
    import django

    os.environ.update(
        DATABASE_URL=args.database_url or DB.format(args.preference),
        DJANGO_SETTINGS_MODULE="config.settings.local",
    )
    django.setup()
    from labeling.models import Task

    task = Task.objects.filter(name__startswith=f"summarize {args.preference} ").last()
    print(json.dumps(report(task, args, args.version), indent=2))


def both(args: argparse.Namespace, passthrough: list[str]) -> None:
    """The copy and novelty runs side by side, one core each; then the comparison."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    children = {}
    for preference in ("copy", "novelty"):
        command = [sys.executable, __file__, "--preference", preference, "--json-out"]
        command += [str(Path(args.out_dir) / f"{preference}.json"), *passthrough]
        command += ["--database-url", DB.format(preference), "--broker", BROKERS[preference]]
        log = open(Path(args.out_dir) / f"{preference}.log", "w")  # noqa: SIM115
        children[preference] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    for child in children.values():
        child.wait()
    results = {}
    for preference in children:
        path = Path(args.out_dir) / f"{preference}.json"
        results[preference] = json.loads(path.read_text()) if path.exists() else None
    print(json.dumps(results, indent=2))
    for preference, result in results.items():
        if result is None:
            print(f"{preference}: failed (see {args.out_dir}/{preference}.log)")
            continue
        b, a = result["before"], result["after"]
        print(
            f"{preference:8} labels {result['labels_in_task']:4} episodes {result['episodes']:4}: "
            f"copied {b['copied']:.3f} ± {b['copied_se']:.3f} -> {a['copied']:.3f} ± "
            f"{a['copied_se']:.3f} (change {result['change']:+.3f} ± {result['change_se']:.3f}), "
            f"KL {result['kl']}; copied words {b['copied_words']:.3f} -> {a['copied_words']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--both", action="store_true", help="run copy and novelty side by side")
    parser.add_argument("--out-dir", default="var/bench-summarize")
    parser.add_argument("--preference", choices=["copy", "novelty"], default="copy")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--broker", default=None)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--n0", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--retrains", type=int, default=3)
    parser.add_argument("--query-length", type=int, default=96)
    parser.add_argument("--response-length", type=int, default=24)
    parser.add_argument("--truncate-after", type=int, default=6)
    parser.add_argument("--truncate-token", default=".", help='"." or "\\n"')
    parser.add_argument("--eval-articles", type=int, default=24)
    parser.add_argument("--per-article", type=int, default=8, help="summaries per eval article")
    parser.add_argument("--minutes", type=float, default=80, help="give up after this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="evaluate the newest task of this preference's database (its artifacts kept)",
    )
    parser.add_argument("--version", type=int, default=None, help="with --evaluate-only")
    args, _ = parser.parse_known_args()
    if args.evaluate_only:
        evaluate_only(args)
        return
    if args.both:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        passthrough = [a for a in sys.argv[1:] if a != "--both"]
        if "--preference" in passthrough:
            parser.error("--both runs both preferences")
        both(args, passthrough)
        return
    args.database_url = args.database_url or DB.format(args.preference)
    args.broker = args.broker or BROKERS[args.preference]
    result = one_run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)


if __name__ == "__main__":
    main()
