"""Copying made visible, per policy version of a summarization task: on its answers to the eval
prompts, the mean fraction of summary word 3-grams copied from the article (the copy fraction
of :mod:`labeling.textstats`, which the drift diagnostics and the simulated labelers use), the
mean length, and ROUGE-1/2/L F1 against the reference summaries where the prompts have them
(Google's ``rouge-score`` package, stemmed, the ``summarization`` extra).

Computed on read from the stored eval samples and cached under the task's newest eval sample,
so a dashboard load scores each version's answers once.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max

from labeling.models import Prompt, Task
from labeling.summaries import article_of
from labeling.textstats import copied_spans, copy_fraction, words
from research.analytics.drift import DriftReport
from training.models import EvalSample

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
CACHE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class SummaryStats:
    """One policy version's answers to the eval prompts."""

    version: int
    samples: int
    copied: float
    """Mean fraction of summary word 3-grams found in the query (article + template)."""
    copied_se: float
    words: float
    """Mean summary length in words."""
    tokens: float | None
    """Mean summary length in tokens (when the token ids are stored)."""
    ended: float | None
    """Fraction of the answers that ended under the truncation rule."""
    references: int = 0
    """Answers whose prompt has a reference summary (ROUGE is over these)."""
    rouge: dict[str, float] = field(default_factory=dict)
    """Mean ROUGE F1 by type (empty without references or without ``rouge-score``)."""

    @property
    def novelty(self) -> float:
        return 1.0 - self.copied


def rouge_scorer() -> Any | None:
    """A stemmed ROUGE-1/2/L scorer, or None when ``rouge-score`` is not installed."""
    try:
        from rouge_score import rouge_scorer as module
    except ImportError:
        return None
    return module.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def version_stats(
    version: int,
    rows: list[tuple[str, str, str, list[int] | None, bool | None]],
    scorer: Any | None,
) -> SummaryStats:
    """Stats of one version's answers: rows of (query, reference, summary, token ids, ended)."""
    copied = [copy_fraction(query, summary) for query, _, summary, _, _ in rows]
    lengths = [len(words(summary)) for _, _, summary, _, _ in rows]
    token_lengths = [len(ids) for *_, ids, _ in rows if isinstance(ids, list)]
    ended = [e for *_, e in rows if e is not None]
    with_reference = [(ref, summary) for _, ref, summary, _, _ in rows if ref.strip()]
    rouge: dict[str, float] = {}
    if with_reference and scorer is not None:
        scores = [scorer.score(ref, summary) for ref, summary in with_reference]
        rouge = {t: statistics.fmean(s[t].fmeasure for s in scores) for t in ROUGE_TYPES}
    n = len(rows)
    return SummaryStats(
        version=version,
        samples=n,
        copied=statistics.fmean(copied),
        copied_se=statistics.stdev(copied) / math.sqrt(n) if n > 1 else 0.0,
        words=statistics.fmean(lengths),
        tokens=statistics.fmean(token_lengths) if token_lengths else None,
        ended=sum(ended) / len(ended) if ended else None,
        references=len(with_reference),
        rouge=rouge,
    )


def summary_stats(*, task: Task) -> list[SummaryStats]:
    """Per policy version with eval answers, oldest first: on the eval split when the task has
    one (else on the prompts the versions answered)."""
    samples = EvalSample.objects.filter(policy_version__task=task)
    if Prompt.objects.filter(task=task, split=Prompt.Split.EVAL).exists():
        samples = samples.filter(prompt__split=Prompt.Split.EVAL)
    marker = samples.aggregate(last=Max("id"), n=Count("id"))
    if not marker["n"]:
        return []
    key = f"dashboard:summaries:{task.pk}:{marker['last']}:{marker['n']}"
    cached = cache.get(key)
    if cached is not None:
        return list(cached)
    by_version: dict[int, list[tuple[str, str, str, list[int] | None, bool | None]]] = defaultdict(
        list
    )
    for number, query, reference, text, token_ids, ended in samples.order_by(
        "policy_version__number", "prompt_id"
    ).values_list(
        "policy_version__number", "prompt__text", "prompt__reference", "text", "token_ids", "ended"
    ):
        by_version[number].append((query, reference, text, token_ids, ended))
    scorer = rouge_scorer()
    stats = [version_stats(v, rows, scorer) for v, rows in sorted(by_version.items())]
    cache.set(key, stats, CACHE_SECONDS)
    return stats


def copy_trend(stats: list[SummaryStats]) -> float | None:
    """Change of the copied fraction from the first version to the newest (None: < 2)."""
    if len(stats) < 2:
        return None
    return stats[-1].copied - stats[0].copied


def copying_flags(stats: list[SummaryStats], report: DriftReport) -> list[str]:
    """Warnings for the summaries card: labelers whose choices reward copying (the drift
    diagnostics' flag on the copy feature, overall or per labeler), and a policy whose copied
    fraction rose by more than twice its standard error since the first version."""
    flags = []
    groups = [g for g in [report.overall, *report.per_labeler] if g is not None and g.fit]
    for group in groups:
        if "copy" not in group.flagged:
            continue
        row = next(r for r in group.fit.rows() if r["name"] == "copy")  # type: ignore[union-attr]
        if row["coef"] > 0:
            who = (
                "Labelers overall reward"
                if group is report.overall
                else f"Labeler {group.key} rewards"
            )
            flags.append(
                f"{who} copying from the article: copy coefficient {row['coef']:+.2f} "
                f"per SD (z = {row['z']:+.1f}, n = {group.n})"
            )
    rise = copy_trend(stats)
    if rise is not None:
        first, last = stats[0], stats[-1]
        if rise > 2 * math.hypot(first.copied_se, last.copied_se):
            flags.append(
                f"The policy copies more: {first.copied:.0%} of summary 3-grams copied at "
                f"v{first.version}, {last.copied:.0%} at v{last.version}"
            )
    return flags


def marked(query: str, text: str) -> list[tuple[str, bool]]:
    """``text`` as (piece, copied) segments: the spans of :func:`labeling.textstats.
    copied_spans` marked, for the sample browser's highlighting (escaped by the template)."""
    segments, at = [], 0
    for start, end in copied_spans(query, text):
        if start > at:
            segments.append((text[at:start], False))
        segments.append((text[start:end], True))
        at = end
    if at < len(text):
        segments.append((text[at:], False))
    return segments


@dataclass(frozen=True)
class ArticleRow:
    """A sample-browser row of a summarization task: the article and two versions' answers
    with their copied spans."""

    article: str
    a: EvalSample | None
    b: EvalSample | None
    a_marked: list[tuple[str, bool]]
    b_marked: list[tuple[str, bool]]


def article_rows(rows: list[Any], template: str) -> list[ArticleRow]:
    """Sample-browser rows (``research.selectors.SideBySide``) with the article read out of
    each query and the summaries' copied spans marked."""
    return [
        ArticleRow(
            article=article_of(row.prompt, template),
            a=row.a,
            b=row.b,
            a_marked=marked(row.prompt, row.a.text) if row.a else [],
            b_marked=marked(row.prompt, row.b.text) if row.b else [],
        )
        for row in rows
    ]
