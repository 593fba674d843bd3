"""Summarization queries (the article cut to the budget at a sentence boundary) and the
copied spans that the labeling page marks."""

from __future__ import annotations

import pytest

from labeling.summaries import (
    DEFAULT_TEMPLATE,
    QueryTooLong,
    article_of,
    check_template,
    fit_query,
    sentence_ends,
)
from labeling.textstats import copied_spans, copy_fraction, words

ARTICLE = (
    "Mr. Smith went to Washington on Monday. He met the U.S. president at noon! "
    'Reporters asked "why?" and he left. The end came quickly.'
)


def word_count(text: str) -> int:
    return len(text.split())


def test_sentence_ends_skip_abbreviations_and_initials():
    ends = sentence_ends(ARTICLE)
    pieces = [ARTICLE[:end] for end in ends]
    assert pieces[0].endswith("on Monday.")
    assert pieces[1].endswith("at noon!")
    assert pieces[2].endswith("he left.")
    assert len(ends) == 3  # not after "Mr.", "U.S." or the quoted "why?" mid-sentence
    assert sentence_ends("J. R. Tolkien wrote it. Then he slept.") == [23]


def test_the_whole_article_when_it_fits():
    fitted = fit_query(ARTICLE, DEFAULT_TEMPLATE, 100, word_count)
    assert fitted.text == ARTICLE + "\n\nTL;DR:"
    assert fitted.article_chars == len(ARTICLE) and not fitted.was_cut(ARTICLE)


@pytest.mark.parametrize("budget", [8, 10, 15, 20, 23])
def test_cut_at_the_last_sentence_boundary_that_fits(budget):
    fitted = fit_query(ARTICLE, DEFAULT_TEMPLATE, budget, word_count)
    assert fitted.tokens == word_count(fitted.text) <= budget
    body = article_of(fitted.text, DEFAULT_TEMPLATE)
    assert ARTICLE.startswith(body) and body.endswith((".", "!"))
    # One more sentence would not have fitted.
    longer = [e for e in sentence_ends(ARTICLE) if e > len(body)]
    if longer:
        assert word_count(ARTICLE[: longer[0]] + "\n\nTL;DR:") > budget


def test_a_first_sentence_over_the_budget_is_cut_between_words():
    fitted = fit_query(ARTICLE, "{article}\nTL;DR:", 5, word_count)
    assert fitted.text == "Mr. Smith went to\nTL;DR:"
    with pytest.raises(QueryTooLong):
        fit_query(ARTICLE, "Summarize this news article please: {article} TL;DR:", 6, word_count)


def test_the_budget_is_counted_on_the_whole_query():
    # A counter that merges across the seam: the pieces fit apart but not together.
    def merges(text: str) -> int:
        return len(text) // 10 + 3 * text.count("!\n")

    fitted = fit_query(ARTICLE, "{article}\n", 7, merges)
    assert merges(fitted.text) <= 7


def test_template_must_hold_the_article_once_and_reads_back():
    with pytest.raises(ValueError):
        check_template("TL;DR: {article} {article}")
    with pytest.raises(ValueError):
        check_template("no article here")
    template = "Article: {article}\nSummary:"
    assert article_of("Article: a b c\nSummary:", template) == "a b c"
    assert article_of("a finished query", template) == "a finished query"


def test_copied_spans_mark_exactly_the_copied_ngrams():
    prompt = "The cat sat on the mat. It was warm."
    sample = "Today the cat sat on the mat, and then it was warm indeed."
    spans = copied_spans(prompt, sample)
    assert [sample[a:b] for a, b in spans] == ["the cat sat on the mat", "it was warm"]
    assert copied_spans(prompt, "Nothing here matches at all.") == []
    assert copy_fraction(prompt, "Nothing here matches at all.") == 0.0
    short = "cat sat"  # shorter than 3 words: bigrams, as copy_fraction does
    assert [short[a:b] for a, b in copied_spans(prompt, short)] == ["cat sat"]


def test_copied_spans_agree_with_copy_fraction():
    prompt = "a b c d e f g h"
    for sample in ["a b c x y", "x a b c d y", "b c d e", "q r s", "a b", "d"]:
        spans = copied_spans(prompt, sample)
        assert bool(spans) == (copy_fraction(prompt, sample) > 0)
        covered = [w for a, b in spans for w in words(sample[a:b])]
        assert all(w in words(prompt) for w in covered)
