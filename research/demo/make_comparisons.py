"""Regenerate comparisons.jsonl: K samples per demo prompt from the embedded model (policy v0),
every one of which ended under the demo task's truncation rule (labelers see only those).

    OMP_NUM_THREADS=1 nice .venv/bin/python -m research.demo.make_comparisons

Sampling follows the demo task's own settings (data.py: K, lengths, temperature, truncation),
over its training preset, built as a sampling job of the loop builds them
(``training.task_settings``). The first ``GOLD_ITEMS`` comparisons with a clear answer are
gold, with the instructions' answer (``data.mark_gold``). Worker-side code (imports torch,
not Django); the web process only reads the file it writes.
"""

from __future__ import annotations

import json
import time

import torch
from tqdm import tqdm

from research.demo.data import COMPARISONS_FILE, DEMO_TASK_SETTINGS, PROMPTS_FILE, mark_gold
from training.ml.ended import sample_ended_comparisons
from training.ml.models import load_model_and_tokenizer
from training.task_settings import config_from_task_fields

SEED = 0
MAX_ROUNDS = 6  # every demo prompt must get K ended responses: the file has one per prompt


def main() -> None:
    prompts = [json.loads(line) for line in PROMPTS_FILE.read_text().splitlines() if line]
    config = config_from_task_fields(DEMO_TASK_SETTINGS).sampling
    model, tokenizer = load_model_and_tokenizer(str(DEMO_TASK_SETTINGS["base_model"]))
    model.eval()
    generator = torch.Generator().manual_seed(SEED)
    bar = tqdm(total=len(prompts), desc="sampling", unit="prompt")
    started = time.perf_counter()
    with torch.no_grad():
        result = sample_ended_comparisons(
            model,
            tokenizer,
            [p["text"] for p in prompts],
            config,
            generator=generator,
            max_rounds=MAX_ROUNDS,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    bar.close()
    if result.dropped:
        missing = ", ".join(prompts[i]["id"] for i in result.dropped)
        raise SystemExit(f"no {config.k} ended responses in {MAX_ROUNDS} rounds for: {missing}")
    rows = []
    for prompt, sample in zip(prompts, result.samples, strict=True):
        assert sample is not None
        rows.append(
            {
                "prompt_id": prompt["id"],
                "prompt": prompt["text"],
                "prompt_token_ids": sample.query_token_ids,
                "samples": sample.responses,
                "sample_token_ids": sample.response_token_ids,
                "sample_ended": sample.ended,
                "policy_version": 0,
            }
        )
    mark_gold(rows)
    with COMPARISONS_FILE.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    rounds = ", ".join(f"{r.ended}/{r.candidates}" for r in result.rounds)
    print(
        f"wrote {len(prompts)} comparisons to {COMPARISONS_FILE}: "
        f"{result.ended} of {result.candidates} candidates ended "
        f"({100 * (result.ended_fraction or 0):.0f}%; per round {rounds}) "
        f"in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
