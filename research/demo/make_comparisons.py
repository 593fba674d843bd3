"""Regenerate comparisons.jsonl: K samples per demo prompt from the embedded model (policy v0).

    .venv/bin/python -m research.demo.make_comparisons

Worker-side code (imports torch, no Django); the web process only reads the file it writes.
"""

from __future__ import annotations

import json

import torch
from tqdm import tqdm

from research.demo.data import COMPARISONS_FILE, PROMPTS_FILE
from training.ml.config import preset
from training.ml.models import load_model_and_tokenizer
from training.ml.sampling import sample_responses

MODEL = "embedded:smollm2-135m"


def main() -> None:
    prompts = [json.loads(line) for line in PROMPTS_FILE.read_text().splitlines()]
    config = preset("cpu-small").sampling
    model, tokenizer = load_model_and_tokenizer(MODEL)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    bar = tqdm(total=len(prompts), desc="sampling", unit="prompt")
    with torch.no_grad():
        samples = sample_responses(
            model,
            tokenizer,
            [p["text"] for p in prompts],
            config,
            generator=generator,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    bar.close()
    with COMPARISONS_FILE.open("w") as out:
        for prompt, sample in zip(prompts, samples, strict=True):
            row = {
                "prompt_id": prompt["id"],
                "prompt": prompt["text"],
                "prompt_token_ids": sample.query_token_ids,
                "samples": sample.responses,
                "sample_token_ids": sample.response_token_ids,
                "policy_version": 0,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(samples)} comparisons to {COMPARISONS_FILE}")


if __name__ == "__main__":
    main()
