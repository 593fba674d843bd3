"""The sampling job (worker side, imports torch): top a task's buffer up with comparisons from
the promoted policy version, each of K responses that ended under the truncation rule (what
labelers see), chosen by the task's selection strategy (training/ml/selection.py):

- ``uniform``: the prompts in turn, the first K responses that ended (the paper's online
  distribution);
- ``uncertainty``, once a reward model exists: ``pool_factor`` times as many prompts as
  comparisons wanted, each with ``responses_per_prompt`` ended responses, scored by the
  latest reward model; the prompts and K-sets with the highest choice entropy (or, with the
  ``disagreement`` measure, the most disputed among the reward model's ensemble members) are
  kept. The
  task's uniform share of the version's comparisons is still sampled uniformly (and scored,
  so the dashboard can measure the reward model on them before they are labeled).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable, Sequence

from torch import Tensor

from labeling.models import Prompt, SelectionStrategy, Task
from training import selectors, services
from training.ml import precision
from training.ml.config import TrainingConfig
from training.ml.ended import CANDIDATES_PER_K, candidates_for, sample_ended_comparisons
from training.ml.models import model_device
from training.ml.reward import score_token_ids
from training.ml.sampling import Sample
from training.ml.selection import (
    DISAGREEMENT,
    ENTROPY,
    UNCERTAINTY,
    Ranked,
    rank_by_disagreement,
    rank_by_uncertainty,
    uniform_quota,
)
from training.model_cache import cached_model, cached_reward_model, policy_model_path
from training.models import PolicyVersion, RewardModelVersion
from training.task_settings import training_config
from training.worker import refresh_db

logger = logging.getLogger("training.jobs")

SAMPLING_PASSES = 2
"""A sampling job samples again, from other prompts, for the prompts it had to drop (they
never got K ended responses), so that one job fills the buffer."""
MEASURED_CANDIDATES = 64
"""Once a version has this many sampled candidates, its ended fraction sizes round 1."""
COPIES_PER_PROMPT = 4
"""A job samples each of its prompts for up to this many comparisons. The copies share their
ended responses (one copy's surplus completes another), so round 1 can be sized by the
expected ended count rather than padded for each prompt alone: about 40% fewer candidates
per comparison on the embedded model (bench/README.md)."""
FIRST_ROUND_CONFIDENCE = 0.5
"""Round 1 gives a prompt K ended responses with this probability, at the version's ended
fraction; with the copies' surplus shared, the few prompts left short get a re-sampling
round of their own."""

Chooser = Callable[[list[tuple[Prompt, Sample]], int], list[services.SampledComparison]]
"""(sampled prompts with their ended responses, comparisons wanted) -> comparisons to store."""


def first_round_candidates(k: int, version: PolicyVersion) -> int | None:
    """Candidates per prompt for round 1 from the version's ended fraction so far, between K
    and 8*K (None: the default 4*K, while the version has not been measured)."""
    if version.candidates_sampled < MEASURED_CANDIDATES:
        return None
    return candidates_for(
        k,
        version.ended_fraction,
        low=k,
        high=2 * CANDIDATES_PER_K * k,
        confidence=FIRST_ROUND_CONFIDENCE,
    )


def sample_comparisons(task_id: int, policy_version_id: int, n: int) -> int:
    """Top the task's buffer up with at most ``n`` comparisons from the version, chosen by the
    task's selection strategy; how many."""
    task = Task.objects.get(pk=task_id)
    wanted = services.sampling_deficit(task=task, policy_version_id=policy_version_id, requested=n)
    if wanted <= 0:
        return 0
    version = PolicyVersion.objects.get(pk=policy_version_id)
    config = training_config(task)
    reward_model = None
    if config.selection.strategy == UNCERTAINTY:
        reward_model = selectors.latest_reward_model(task_id=task_id)
    uniform = wanted
    if reward_model is not None:
        uniform_so_far, total_so_far = selectors.selection_counts(
            task_id=task_id, policy_version_id=policy_version_id
        )
        uniform = uniform_quota(
            wanted=wanted,
            share=config.selection.uniform_share,
            uniform_so_far=uniform_so_far,
            total_so_far=total_so_far,
        )
    job = _Job(task, version, config, reward_model)
    created = job.top_up(uniform, config.sampling.k, 1, job.choose_uniform) if uniform else 0
    if wanted > uniform:
        per_prompt = config.selection.responses_for(config.sampling.k)
        pool = config.selection.pool_factor
        created += job.top_up(wanted - uniform, per_prompt, pool, job.choose_by_uncertainty)
    entropy = f", mean {job.measure} {statistics.fmean(job.entropies):.3f}" if job.entropies else ""
    logger.info(
        "task %s: policy v%d: %d comparisons of %d ended responses from %d candidates "
        "(%.0f%% ended, %d rounds, %d prompts dropped) in %.1f s; %d uniform, %d by "
        "uncertainty%s",
        task_id, version.number, created, config.sampling.k, job.sampled,
        100 * job.ended / job.sampled if job.sampled else 0.0, job.rounds, len(set(job.dropped)),
        time.perf_counter() - job.started, job.selected[SelectionStrategy.UNIFORM],
        job.selected[SelectionStrategy.UNCERTAINTY], entropy,
    )  # fmt: skip
    return created


class _Job:
    """One sampling job's state: the models it uses and what it sampled so far."""

    def __init__(
        self,
        task: Task,
        version: PolicyVersion,
        config: TrainingConfig,
        reward_model: RewardModelVersion | None,
    ) -> None:
        self.task, self.version, self.config = task, version, config
        self.reward_model = reward_model
        self.model, self.tokenizer = cached_model(policy_model_path(task, version))
        self.device = model_device(self.model)
        self.bf16 = precision.bf16_enabled(config.ppo.mixed_precision, self.device)
        self.started = time.perf_counter()
        self.sampled = self.ended = self.rounds = 0
        self.dropped: list[int] = []  # prompt ids
        self.selected = {SelectionStrategy.UNIFORM: 0, SelectionStrategy.UNCERTAINTY: 0}
        self.entropies: list[float] = []

    def top_up(self, wanted: int, per_prompt: int, pool: int, choose: Chooser) -> int:
        """Sample ``pool`` prompts per comparison wanted, each with ``per_prompt`` ended
        responses, keep what ``choose`` keeps; again once for the prompts that were dropped."""
        sampling = dataclasses.replace(self.config.sampling, k=per_prompt)
        candidates = first_round_candidates(per_prompt, self.version)
        created = 0
        for _ in range(SAMPLING_PASSES):
            need = (wanted - created) * pool
            distinct = selectors.prompts_to_sample(
                task_id=self.task.pk,
                n=-(-need // COPIES_PER_PROMPT),
                exclude_ids=self.dropped,
            )
            prompts = [p for p in distinct for _ in range(COPIES_PER_PROMPT)]
            if not prompts:
                if not self.dropped:
                    logger.warning("task %s has no train prompts to sample", self.task.pk)
                break
            prompts = (prompts * (need // len(prompts) + 1))[:need]
            queries = [p.token_ids if p.token_ids else p.text for p in prompts]
            if any(isinstance(q, str) for q in queries):
                queries = [p.text for p in prompts]
            with precision.autocast(self.device, self.bf16):  # as PPO's rollouts
                result = sample_ended_comparisons(
                    self.model, self.tokenizer, queries, sampling, candidates=candidates
                )
            self.sampled, self.ended = self.sampled + result.candidates, self.ended + result.ended
            self.rounds = max(self.rounds, len(result.rounds))
            self.dropped.extend(prompts[i].pk for i in result.dropped)
            chosen = choose([(prompts[i], s) for i, s in result.kept], wanted - created)
            refresh_db()
            stored = services.create_comparisons(
                task=self.task,
                policy_version_id=self.version.pk,
                sampled=chosen,
                counts=services.SamplingCounts(candidates=result.candidates, ended=result.ended),
                reward_model_version_id=self.reward_model.pk if self.reward_model else None,
            )
            created += len(stored)
            for comparison in stored:
                self.selected[SelectionStrategy(comparison.selection)] += 1
            if created >= wanted or not result.dropped:
                break
        return created

    def choose_uniform(
        self, kept: list[tuple[Prompt, Sample]], wanted: int
    ) -> list[services.SampledComparison]:
        """The first ``wanted`` prompts with their first K ended responses (scored when the
        job has a reward model: the unbiased sample it is measured on)."""
        chosen = [(prompt, sample, tuple(range(self.config.sampling.k))) for prompt, sample in kept]
        chosen = chosen[:wanted]
        rewards = self._rewards([(s, r) for _, s, r in chosen], normalized=True)
        return [
            _comparison(prompt, sample, responses, SelectionStrategy.UNIFORM, scores)
            for (prompt, sample, responses), scores in zip(chosen, rewards, strict=True)
        ]

    def choose_by_uncertainty(
        self, kept: list[tuple[Prompt, Sample]], wanted: int
    ) -> list[services.SampledComparison]:
        """The ``wanted`` prompts whose best K-set has the highest choice entropy under the
        reward model (or the most disputed K-set, by the ``disagreement`` measure), with that
        K-set."""
        every = [(s, tuple(range(len(s.responses)))) for _, s in kept]
        k = self.config.sampling.k
        ranked: list[Ranked]
        if self.measure == DISAGREEMENT:
            members = self._member_rewards(every)
            ranked = rank_by_disagreement(members, k, wanted)
        else:
            raw = [r or [] for r in self._rewards(every, normalized=False)]
            ranked = rank_by_uncertainty(raw, k, wanted)
        chosen = [(kept[r.candidate][0], kept[r.candidate][1], r.responses) for r in ranked]
        self.entropies.extend(r.entropy for r in ranked)
        normalized = self._rewards([(s, r) for _, s, r in chosen], normalized=True)
        return [
            _comparison(prompt, sample, responses, SelectionStrategy.UNCERTAINTY, scores)
            for (prompt, sample, responses), scores in zip(chosen, normalized, strict=True)
        ]

    @property
    def measure(self) -> str:
        """The selection measure this job can apply: ``disagreement`` needs a reward model with
        an ensemble (one trained before the task's ensemble was set up has one member)."""
        wanted = self.config.selection.measure
        if wanted == DISAGREEMENT and self.reward_model is not None:
            model, _, _ = cached_reward_model(self.reward_model.artifact_path)
            if model.head.size >= 2:
                return DISAGREEMENT
        return ENTROPY

    def _member_rewards(
        self, items: Sequence[tuple[Sample, tuple[int, ...]]]
    ) -> list[list[list[float]]]:
        """Per item, each ensemble member's raw rewards of the given responses (E x C)."""
        return [scores.T.tolist() for scores in self._scores(items, members=True)]

    def _rewards(
        self, items: Sequence[tuple[Sample, tuple[int, ...]]], normalized: bool
    ) -> list[list[float] | None]:
        """Per item, the reward model's rewards of the given responses (raw: what its K-way
        choice distribution is the softmax of); Nones without a reward model."""
        if self.reward_model is None or not items:
            return [None] * len(items)
        return [scores.tolist() for scores in self._scores(items, normalized=normalized)]

    def _scores(self, items: Sequence[tuple[Sample, tuple[int, ...]]], **how: bool) -> list[Tensor]:
        """Per item, :func:`score_token_ids` of its responses by the job's reward model
        (``how``: ``normalized`` or ``members``): (C,) or (C, E) each."""
        assert self.reward_model is not None
        model, tokenizer, _ = cached_reward_model(self.reward_model.artifact_path)
        queries = [s.query_token_ids for s, responses in items for _ in responses]
        answers = [s.response_token_ids[j] for s, responses in items for j in responses]
        flat = score_token_ids(model, queries, answers, int(tokenizer.pad_token_id or 0), **how)
        return list(flat.split([len(responses) for _, responses in items]))


def _comparison(
    prompt: Prompt,
    sample: Sample,
    responses: tuple[int, ...],
    selection: SelectionStrategy,
    scores: list[float] | None,
) -> services.SampledComparison:
    return services.SampledComparison(
        prompt_id=prompt.pk,
        query_token_ids=sample.query_token_ids,
        samples=[sample.responses[j] for j in responses],
        sample_token_ids=[sample.response_token_ids[j] for j in responses],
        sample_ended=[sample.ended[j] for j in responses],
        selection=selection,
        scores=scores,
    )
