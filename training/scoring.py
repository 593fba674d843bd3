"""Worker-side scoring with a reward-model version (imports torch, like training.jobs):
the K samples of recent comparisons (for agreement on the dashboard) and one sample per eval
prompt from a policy version (for the side-by-side sample browser)."""

from __future__ import annotations

import dataclasses

from training import selectors, services
from training.ml.config import TrainingConfig
from training.ml.models import load_tokenizer
from training.ml.reward import load_reward_model, score_token_ids
from training.ml.sampling import encode_queries, sample_responses
from training.model_cache import cached_model, policy_model_path
from training.models import PolicyVersion, RewardModelVersion
from training.worker import refresh_db

EVAL_PROMPTS = 4
SCORE_LIMIT = 256


def score_comparisons(version: RewardModelVersion) -> int:
    """Score recent comparisons' K samples with a reward-model version (for agreement)."""
    comparisons = [
        c
        for c in selectors.comparisons_to_score(task_id=version.task_id, limit=SCORE_LIMIT)
        if c.sample_token_ids and c.prompt.token_ids
    ]
    if not comparisons:
        return 0
    model, tokenizer, _ = load_reward_model(version.artifact_path)
    pairs = [(list(c.prompt.token_ids or []), list(c.sample_token_ids or [])) for c in comparisons]
    queries = [query for query, samples in pairs for _ in samples]
    responses = [ids for _, samples in pairs for ids in samples]
    flat = score_token_ids(model, queries, responses, int(tokenizer.pad_token_id or 0)).tolist()
    scores: dict[int, list[float]] = {}
    position = 0
    for c, (_, samples) in zip(comparisons, pairs, strict=True):
        scores[c.pk] = flat[position : position + len(samples)]
        position += len(samples)
    refresh_db()
    return services.store_comparison_scores(reward_model_version_id=version.pk, scores=scores)


def write_eval_samples(
    version: PolicyVersion, reward_model: RewardModelVersion | None, config: TrainingConfig
) -> int:
    """One sample per eval prompt from the version, with its reward-model score (None without
    a reward model: v0 answers before the first one exists) and whether it ended under the
    truncation rule (ended or not: this measures the policy as PPO sees it)."""
    task = version.task
    prompts = selectors.eval_prompts(task_id=task.pk, n=EVAL_PROMPTS)
    if not prompts:
        return 0
    model, tokenizer = cached_model(policy_model_path(task, version))
    sampling = TrainingConfig.from_dict({"sampling": {**config.sampling.__dict__, "k": 1}})
    samples = sample_responses(model, tokenizer, [p.text for p in prompts], sampling.sampling)
    rows = [
        services.EvalRow(
            prompt_id=p.pk,
            text=s.responses[0],
            token_ids=s.response_token_ids[0],
            reward=None,
            ended=s.ended[0],
        )
        for p, s in zip(prompts, samples, strict=True)
    ]
    if reward_model is not None:
        rows = _scored(rows, [s.query_token_ids for s in samples], reward_model)
    refresh_db()
    return services.store_eval_samples(
        policy_version_id=version.pk,
        reward_model_version_id=reward_model.pk if reward_model else None,
        rows=rows,
    )


def rescore_eval_samples(
    version: PolicyVersion, reward_model: RewardModelVersion, config: TrainingConfig
) -> int:
    """Score a version's stored eval samples with another reward model (v0's baseline with
    each new one, so that the sample browser compares scores of one model)."""
    stored = selectors.eval_samples(policy_version_id=version.pk)
    if not stored:
        return 0
    tokenizer = load_tokenizer(policy_model_path(version.task, version))
    texts = [s.prompt.text for s in stored]
    queries = encode_queries(tokenizer, texts, config.sampling.query_length)
    rows = [
        services.EvalRow(
            prompt_id=s.prompt_id,
            text=s.text,
            token_ids=list(s.token_ids or []),
            reward=None,
            ended=s.ended,
        )
        for s in stored
    ]
    rows = _scored(rows, queries, reward_model)
    refresh_db()
    return services.store_eval_samples(
        policy_version_id=version.pk, reward_model_version_id=reward_model.pk, rows=rows
    )


def _scored(
    rows: list[services.EvalRow], queries: list[list[int]], reward_model: RewardModelVersion
) -> list[services.EvalRow]:
    reward, tokenizer, _ = load_reward_model(reward_model.artifact_path)
    rewards = score_token_ids(
        reward, queries, [row.token_ids for row in rows], int(tokenizer.pad_token_id or 0)
    ).tolist()
    return [dataclasses.replace(row, reward=r) for row, r in zip(rows, rewards, strict=True)]
