import torch

from training.ml.config import SamplingConfig
from training.ml.models import load_model, load_tokenizer, shared_prompt_hidden_states
from training.ml.sampling import (
    pad_left,
    pad_right,
    sample_responses,
    truncate_responses,
    truncation_token_ids,
)

DOT, STOP = 5, 0


def test_truncation_rule():
    ids = torch.tensor(
        [
            [1, DOT, 2, DOT, 3, 4],  # dot at 1 is too early; cut after position 3
            [1, 2, 3, 4, 6, 7],  # no dot: flagged
            [1, 2, DOT, DOT, 3, 4],  # dot exactly at min position 2
            [1, STOP, 9, 9, 9, 9],  # EOS before min position: ends, flagged
            [1, 2, 3, STOP, 9, 9],  # EOS after min position: ends normally
        ]
    )
    mask, ended = truncate_responses(ids, [DOT], truncate_after=2, stop_ids=[STOP])
    assert mask.sum(1).tolist() == [4, 6, 3, 2, 4]
    assert ended.tolist() == [True, False, True, False, True]
    mask, ended = truncate_responses(ids, [], truncate_after=2, stop_ids=[STOP])
    assert mask.sum(1).tolist() == [6, 6, 6, 2, 4]
    assert ended.tolist() == [True, True, True, False, True]


def test_truncation_token_ids(tiny_tokenizer):
    ids = truncation_token_ids(tiny_tokenizer, ".")
    assert ids and all(tiny_tokenizer.decode([i]).endswith(".") for i in ids)
    assert truncation_token_ids(tiny_tokenizer, None) == []


def test_shared_prompt_pass_equals_full_sequences(tiny_model_dir):
    model = load_model(str(tiny_model_dir))
    queries = [[10, 11, 12, 13, 14], [20, 21]]
    responses = [[30, 31, 32], [33], [34, 35], [36, 37, 38], [], [39]]  # K = 3
    query_ids, query_mask = pad_left(queries, 0)
    response_ids, response_mask = pad_right(responses, 0)
    query_last, hidden = shared_prompt_hidden_states(
        model, query_ids, query_mask, response_ids, response_mask
    )
    for row, response in enumerate(responses):
        query = queries[row // 3]
        full = torch.tensor([query + response])
        expected = model.transformer(input_ids=full).last_hidden_state[0]  # (T, H)
        assert torch.allclose(query_last[row // 3], expected[len(query) - 1], atol=1e-5)
        if response:
            assert torch.allclose(hidden[row, : len(response)], expected[len(query) :], atol=1e-5)


def test_sample_responses_k_per_query(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    config = SamplingConfig(
        k=3, query_length=6, response_length=8, truncate_after=2, batch_size=2, temperature=1.0
    )
    generator = torch.Generator().manual_seed(0)
    queries = ["The movie was", "It is a nice day and the sun", "Dogs"]
    samples = sample_responses(model, tokenizer, queries, config, generator=generator)
    assert [s.query for s in samples] == queries
    cut = set(truncation_token_ids(tokenizer, "."))
    for sample in samples:
        assert len(sample.query_token_ids) <= 6
        assert len(sample.responses) == len(sample.response_token_ids) == len(sample.ended) == 3
        for ids, text, ended in zip(
            sample.response_token_ids, sample.responses, sample.ended, strict=True
        ):
            # The text labelers read: special tokens (an ending EOS) are not shown.
            assert 1 <= len(ids) <= 8 and tokenizer.decode(ids, skip_special_tokens=True) == text
            assert tokenizer.eos_token not in text
            late_cut = [i for p, i in enumerate(ids) if p >= 2 and i in cut]
            if ended and ids[-1] != tokenizer.eos_token_id:
                assert late_cut == [ids[-1]]
            if not ended:
                assert not late_cut
    again = sample_responses(
        model, tokenizer, queries, config, generator=torch.Generator().manual_seed(0)
    )
    assert [s.response_token_ids for s in again] == [s.response_token_ids for s in samples]


class _Vocabulary:
    """A stand-in tokenizer: token i decodes to texts[i]."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    def batch_decode(self, ids: list[list[int]]) -> list[str]:
        return [self.texts[row[0]] for row in ids]


def test_newline_truncation_cuts_at_any_token_holding_a_line_break():
    # The embedded model's vocabulary merges a newline with the indentation after it: 119 of
    # its 129 newline tokens do not end with "\n". Summaries end at the line break.
    vocabulary = _Vocabulary(["the", ".\n", "\n   ", "\n\n", " cut.", "\r\n\t", "x"])
    assert truncation_token_ids(vocabulary, "\n") == [1, 2, 3, 5]
    assert truncation_token_ids(vocabulary, ".") == [4]  # "." still means "ends with"
    ids = torch.tensor([[0, 2, 0, 0, 6, 6], [0, 6, 6, 2, 6, 6], [0, 0, 0, 0, 0, 0]])
    mask, ended = truncate_responses(ids, truncation_token_ids(vocabulary, "\n"), 2)
    assert mask.sum(1).tolist() == [6, 4, 6]  # the early newline does not count
    assert ended.tolist() == [False, True, False]
