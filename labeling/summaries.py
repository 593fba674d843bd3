"""Summarization queries: an article put into the task's template and cut to its query-token
budget at a sentence boundary (the paper's ``{article}\\n\\nTL;DR:``), and the article read
back out of a query for the labeling page. Pure text logic; token counts come from a callable
(the task's tokenizer, :mod:`labeling.tokens`), so nothing here loads a model.

The cut is never inside a token: the article is cut between sentences (between words only
when its first sentence alone is over the budget), and the budget is checked on the
tokenization of the whole query as the model reads it, not on pieces tokenized apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PLACEHOLDER = "{article}"
DEFAULT_TEMPLATE = PLACEHOLDER + "\n\nTL;DR:"

# Words whose trailing period does not end a sentence ("Mr. Smith", "Dec. 5", "U.S. troops").
_ABBREVIATION_WORDS = (
    "mr mrs ms dr prof sr jr st mt ft gen gov sen rep lt col capt sgt cmdr adm rev hon inc ltd co "
    "corp bros no nos vol vs etc al approx dept est fig jan feb mar apr jun jul aug sep sept oct "
    "nov dec e.g i.e u.s u.k u.n a.m p.m"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# A sentence ends at . ! or ? (with closing quotes or brackets) before whitespace, or at a
# line break.
_END = re.compile(r"""[.!?]+["'\u201d\u2019)\]]*(?=\s)|\n""")


class QueryTooLong(ValueError):
    """Not even the template with the article's first word fits the query budget."""


def check_template(template: str) -> None:
    """ValueError unless ``template`` holds ``{article}`` exactly once."""
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"the query template must contain {PLACEHOLDER} exactly once")


def template_parts(template: str) -> tuple[str, str]:
    """(text before ``{article}``, text after it)."""
    check_template(template)
    before, after = template.split(PLACEHOLDER)
    return before, after


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence of ``text`` that another sentence follows (where it
    may be cut), in order."""
    ends = []
    for match in _END.finditer(text):
        end = match.end()
        if match.group() != "\n":
            word = text[: match.start() + 1].rsplit(None, 1)[-1].lower().rstrip(".")
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue  # "Mr.", an initial "J."
            if text[end:].lstrip()[:1].islower():
                continue  # 'asked "why?" and left': the sentence goes on
        if text[end:].strip():
            ends.append(end)
    return ends


def word_ends(text: str) -> list[int]:
    """Offsets just after each word of ``text`` that another word follows."""
    return [m.start() for m in re.finditer(r"(?<=\S)\s+(?=\S)", text)]


@dataclass(frozen=True)
class FittedQuery:
    text: str
    """The query: the template with the (possibly cut) article."""
    article_chars: int
    """How many leading characters of the article the query holds."""
    tokens: int
    """Tokens of the query (at most the budget)."""

    def was_cut(self, article: str) -> bool:
        return self.article_chars < len(article.strip())


def fit_query(
    article: str, template: str, budget: int, count_tokens: Callable[[str], int]
) -> FittedQuery:
    """The query of ``article`` under ``template`` in at most ``budget`` tokens: the whole
    article when it fits, else its longest run of whole sentences from the start that does
    (of whole words, when the first sentence alone does not fit). QueryTooLong when not even
    one word fits."""
    before, after = template_parts(template)
    article = article.strip()

    def query(chars: int) -> str:
        return before + article[:chars].rstrip() + after

    tokens = count_tokens(query(len(article)))
    if tokens <= budget:
        return FittedQuery(query(len(article)), len(article), tokens)
    for cuts in (sentence_ends(article), word_ends(article)):
        chars = _longest_fit(cuts, lambda c: count_tokens(query(c)), budget)
        if chars is not None:
            text = query(chars)
            return FittedQuery(text, len(article[:chars].rstrip()), count_tokens(text))
    raise QueryTooLong(
        f"not even the first word of the article fits the query length of {budget} tokens "
        f"with the template {template!r}"
    )


def _longest_fit(cuts: Sequence[int], tokens_at: Callable[[int], int], budget: int) -> int | None:
    """The largest cut whose query fits: a binary search (token counts grow with the prefix,
    up to the odd merge at the cut), then a step back while the found one does not fit."""
    low, high = 0, len(cuts) - 1
    found = -1
    while low <= high:
        middle = (low + high) // 2
        if tokens_at(cuts[middle]) <= budget:
            found, low = middle, middle + 1
        else:
            high = middle - 1
    while found >= 0 and tokens_at(cuts[found]) > budget:
        found -= 1
    return cuts[found] if found >= 0 else None


def article_of(query: str, template: str) -> str:
    """The article a query holds under ``template`` (the whole query when it does not have
    the template's shape, e.g. a prompt imported as a finished query)."""
    try:
        before, after = template_parts(template)
    except ValueError:
        return query
    if query.startswith(before) and query.endswith(after) and len(query) >= len(before + after):
        return query[len(before) : len(query) - len(after)]
    return query
