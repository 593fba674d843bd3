"""Comparisons of K ended responses (training/ml/ended.py), on a tiny GPT-2 steered so that
the outcome of the truncation rule is known per query."""

from typing import Any

import pytest
import torch
from transformers import GPT2LMHeadModel

from training.ml.config import SamplingConfig
from training.ml.ended import CONFIDENCE, _at_least, candidates_for, sample_ended_comparisons
from training.ml.models import load_model, load_tokenizer
from training.ml.sampling import (
    sample_responses,
    truncate_responses,
    truncation_token_ids,
)

MARK = 7  # a query holding this token can never end (see SteeredGPT2)


class SteeredGPT2(GPT2LMHeadModel):
    """The tiny GPT-2 with its logits steered so that the outcome of the truncation rule is
    known per query: the truncation token is likely (a boost of ``BOOST``) except in rows
    whose query holds ``MARK``, where it and EOS are impossible (that query never ends).

    The prompt pass (several tokens per row) records which queries are marked; later steps
    (one token per row, B*K rows) repeat that K times, as sample_tokens expands its cache."""

    BOOST = 4.0
    cut_ids: list[int] = []

    def forward(self, input_ids=None, cache=None, attention_mask=None, **kwargs):
        out = super().forward(
            input_ids=input_ids, cache=cache, attention_mask=attention_mask, **kwargs
        )
        if input_ids.shape[1] > 1:  # the prompt pass
            self.marked = (input_ids == MARK).any(dim=1)  # (B,)
        rows = self.marked.repeat_interleave(input_ids.shape[0] // self.marked.shape[0])  # (N,)
        logits = out.logits.clone()  # (N, T, V)
        logits[:, :, self.cut_ids] += self.BOOST
        logits[rows.nonzero().flatten()[:, None], :, [*self.cut_ids, 0]] = float("-inf")
        out.logits = logits
        return out


@pytest.fixture
def steered(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = SteeredGPT2.from_pretrained(str(tiny_model_dir)).eval()
    model.cut_ids = truncation_token_ids(tokenizer, ".")
    return model, tokenizer


QUERIES = [[20, 21, 22, 23], [30, 31], [MARK, 40, 41], [50, 51, 52], [60]]
STEERED = SamplingConfig(
    k=3, query_length=8, response_length=8, truncate_after=2, batch_size=2, temperature=1.0
)


def test_steered_model_ends_as_designed(steered):
    model, tokenizer = steered
    samples = sample_responses(
        model, tokenizer, QUERIES * 4, STEERED, generator=torch.Generator().manual_seed(1)
    )
    marked = [s for s in samples if MARK in s.query_token_ids]
    others = [s for s in samples if MARK not in s.query_token_ids]
    assert not any(e for s in marked for e in s.ended)
    ended = [e for s in others for e in s.ended]
    assert 0.2 < sum(ended) / len(ended) < 0.9  # some end, some do not: rounds are needed


def assert_ended(sample, tokenizer, config):
    """Every response ended under the rule, on its own token ids, and decodes to its text."""
    cut = truncation_token_ids(tokenizer, config.truncate_token)
    assert sample.ended == [True] * config.k
    assert len(sample.responses) == len(sample.response_token_ids) == config.k
    for ids, text in zip(sample.response_token_ids, sample.responses, strict=True):
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        mask, ended = truncate_responses(
            torch.tensor([ids]), cut, config.truncate_after, [tokenizer.eos_token_id]
        )
        assert bool(ended[0]) and bool(mask.all())  # ended, and nothing after its end


def test_sample_ended_comparisons_keeps_the_first_k_ended(steered):
    model, tokenizer = steered
    k = STEERED.k
    result = sample_ended_comparisons(
        model,
        tokenizer,
        QUERIES,
        STEERED,
        generator=torch.Generator().manual_seed(3),
        candidates=k,
        max_rounds=4,
    )
    # The marked query never ends: dropped, never padded with responses that did not end.
    assert result.dropped == [2] and result.samples[2] is None
    assert [i for i, _ in result.kept] == [0, 1, 3, 4]
    for i, sample in result.kept:
        assert sample.query_token_ids == QUERIES[i]
        assert_ended(sample, tokenizer, STEERED)

    # Round 1 with K candidates draws exactly what sample_responses draws from the same seed
    # (same passes): each query keeps those of its responses that ended, in order, first.
    plain = sample_responses(
        model, tokenizer, QUERIES, STEERED, generator=torch.Generator().manual_seed(3)
    )
    for i, sample in result.kept:
        first_round = [
            ids for ids, e in zip(plain[i].response_token_ids, plain[i].ended, strict=True) if e
        ]
        assert sample.response_token_ids[: len(first_round)] == first_round

    # The statistics add up: every round counts what it sampled and what of it ended.
    first = result.rounds[0]
    assert (first.queries, first.candidates) == (len(QUERIES), len(QUERIES) * k)
    assert first.ended == sum(sum(s.ended) for s in plain)
    assert len(result.rounds) == 4  # the marked query keeps a round going until the last
    assert all(r.queries >= 1 and r.candidates >= r.queries for r in result.rounds)
    assert all(0 <= r.ended <= r.candidates for r in result.rounds)
    assert result.candidates == sum(r.candidates for r in result.rounds)
    assert result.ended == sum(r.ended for r in result.rounds) >= k * len(result.kept)
    assert result.ended_fraction == result.ended / result.candidates
    shorts = [r.queries for r in result.rounds]
    assert shorts == sorted(shorts, reverse=True) and shorts[-1] == 1  # only the marked one


def test_sample_ended_comparisons_default_candidates_fill_every_query(steered):
    model, tokenizer = steered
    progress: list[tuple[int, int]] = []
    queries = [q for q in QUERIES if MARK not in q] * 3
    result = sample_ended_comparisons(
        model,
        tokenizer,
        queries,
        STEERED,
        generator=torch.Generator().manual_seed(0),
        progress=lambda done, total: progress.append((done, total)),
    )
    assert not result.dropped and len(result.kept) == len(queries)
    assert result.rounds[0].candidates == len(queries) * 4 * STEERED.k  # 4*K by default
    for _, sample in result.kept:
        assert_ended(sample, tokenizer, STEERED)
    assert progress[-1] == (len(queries), len(queries))
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_sample_ended_comparisons_text_queries_and_no_truncation(tiny_model_dir):
    """Without a truncation token every response ends (unless EOS comes too early)."""
    model, tokenizer = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    config = SamplingConfig(
        k=2, query_length=6, response_length=5, truncate_token=None, truncate_after=1
    )
    result = sample_ended_comparisons(
        model, tokenizer, ["The movie was", "Dogs"], config, generator=torch.Generator()
    )
    assert [s.query for _, s in result.kept] == ["The movie was", "Dogs"]
    for _, sample in result.kept:
        assert_ended(sample, tokenizer, config)


def test_sample_ended_comparisons_rejects_bad_arguments(steered):
    model, tokenizer = steered
    bad: list[dict[str, Any]] = [
        {"candidates": 2},  # fewer than K
        {"max_rounds": 0},
        {"candidates": 6, "max_candidates": 5},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            sample_ended_comparisons(model, tokenizer, QUERIES, STEERED, **kwargs)
    assert sample_ended_comparisons(model, tokenizer, [], STEERED).samples == []


def test_candidates_for_is_the_fewest_that_reach_the_confidence():
    for need, p in [(4, 0.36), (4, 0.19), (1, 0.5), (3, 0.9), (2, 0.05)]:
        n = candidates_for(need, p, low=need, high=200)
        assert _at_least(n, p, need) >= CONFIDENCE
        assert n == need or _at_least(n - 1, p, need) < CONFIDENCE
    assert candidates_for(4, 1.0, low=4, high=64) == 4
    assert candidates_for(4, 0.0, low=4, high=64) == 64  # never ends: the cap
    assert candidates_for(4, None, low=4, high=64) == 64
    assert candidates_for(4, 0.01, low=4, high=20) == 20
    assert candidates_for(2, 0.9, low=16, high=64) == 16  # at least ``low``
    assert candidates_for(4, 0.36, low=4, high=64) > candidates_for(4, 0.5, low=4, high=64)
    # P(Binomial(n, p) >= need) itself, against a direct sum.
    assert _at_least(3, 0.5, 2) == pytest.approx(0.5)
    assert _at_least(5, 0.2, 0) == 1.0 and _at_least(2, 0.3, 3) == 0.0


def test_copies_of_a_query_share_their_ended_responses(steered):
    """Six copies of one query, K candidates each, one round: every ended response fills some
    copy, so floor(ended / K) copies are complete (alone, a copy needs all K of its own)."""
    model, tokenizer = steered
    k = STEERED.k
    copies = [QUERIES[0]] * 6
    result = sample_ended_comparisons(
        model, tokenizer, copies, STEERED, generator=torch.Generator().manual_seed(5),
        candidates=k, max_rounds=1,
    )  # fmt: skip
    pooled = result.rounds[0].ended // k
    assert pooled >= 2
    assert len(result.kept) == min(6, pooled)
    assert [i for i, _ in result.kept] == list(range(len(result.kept)))  # filled in order
    seen = [tuple(ids) for _, s in result.kept for ids in s.response_token_ids]
    assert len(seen) == len(result.kept) * k  # each response in exactly one comparison
    for _, sample in result.kept:
        assert_ended(sample, tokenizer, STEERED)
