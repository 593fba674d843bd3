"""GPU check: sampling, one reward-model step and one PPO step of the ``paper`` preset on a
GPT-2 774M configuration with random weights (nothing is downloaded: speed does not depend
on the weights), printing tokens/s and model FLOP utilization (MFU) for each.

    bench/gpu_check.sh                        # CUDA, paper preset, GPT-2 774M (< 5 minutes)
    bench/gpu_check.sh --peak-tflops 989      # a GPU whose name is not in PEAK_TFLOPS
    bench/gpu_check.sh --device cpu --tiny    # the dry run CI makes: tiny GPT-2, small batches

MFU = model FLOPs / seconds / the GPU's dense bf16 peak. Model FLOPs: 2 x N per token for a
forward pass and 6 x N for forward + backward, with N the parameters a token's matmuls use:
the transformer blocks (non-embedding parameters) for every token, plus the LM head
(vocabulary x width) for the tokens whose logits are computed (sampled tokens; the response
tokens in PPO; none in the reward model, which reads the last hidden state). Attention's
score FLOPs are left out (88-token sequences: under 2%). Every phase runs the product's
code: ``sample_responses`` (K responses per query from one prompt pass), ``train_reward_model``
(K-way loss, the prompt computed once) and ``train_policy`` (rollout, scoring, reference,
4 PPO epochs), each timed after a warm-up on the same shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by GPU name; the first match wins.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


def peak_tflops(name: str, given: float | None) -> tuple[float | None, str]:
    """(peak, where it came from) for a device name, or the ``--peak-tflops`` value."""
    if given:
        return given, "--peak-tflops"
    for key, value in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return value, f"table: {key}"
    return None, "unknown: pass --peak-tflops"


def word_tokenizer(vocab: int):
    """A word-level tokenizer of ``vocab`` made-up words, one in 20 ending with "." (so that
    responses end under the truncation rule, as real text does); id 0 is EOS. No hub."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<|endoftext|>": 0}
    words.update({f"w{i}{'.' if i % 20 == 0 else ''}": i for i in range(1, vocab)})
    tokenizer = Tokenizer(models.WordLevel(words, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def build(args: argparse.Namespace, directory: Path):  # -> (config, model dims, device name)
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.ml.presets import preset

    config = preset("paper")
    if args.tiny:
        gpt = GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=2)
        config.sampling.query_length, config.sampling.response_length = 16, 8
        config.sampling.truncate_after, config.sampling.batch_size = 2, 4
        config.reward.batch_size, config.reward.micro_batch_size = 8, 4
        config.ppo.batch_size = config.ppo.minibatch_size = 16
        config.ppo.gradient_accumulation_steps = 2
    else:  # GPT-2 large (774M), the paper's model
        gpt = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=1280, n_layer=36, n_head=20)
    gpt.bos_token_id = gpt.eos_token_id = 0
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    torch.manual_seed(0)
    with torch.device(device):  # random init on the GPU: seconds, not minutes
        model = GPT2LMHeadModel(gpt)
    model.to(torch.bfloat16).save_pretrained(directory, safe_serialization=True)
    word_tokenizer(gpt.vocab_size).save_pretrained(directory)
    blocks = sum(p.numel() for p in model.transformer.h.parameters())
    blocks += sum(p.numel() for p in model.transformer.ln_f.parameters())
    head = gpt.vocab_size * gpt.n_embd
    del model
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return config, gpt.vocab_size, blocks, head, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny GPT-2 and batches (dry run)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the device")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per phase")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: load_model then picks the CPU
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        config, vocab, blocks, head, name = build(args, work / "model")
        peak, source = peak_tflops(name, args.peak_tflops)
        from training.ml import precision

        bf16 = precision.bf16_enabled(config.ppo.mixed_precision, torch.device(args.device))
        tf32 = precision.enable_tf32()
        print(
            f"GPU check on {name}: peak {peak or 'n/a'} TFLOP/s bf16 dense ({source}); "
            f"{'tiny GPT-2' if args.tiny else 'GPT-2 774M'} with random weights: "
            f"N = {blocks / 1e6:.1f}M block + {head / 1e6:.1f}M LM-head parameters; "
            f"bf16 autocast {'on' if bf16 else 'off'}, TF32 {'on' if tf32 else 'n/a'}",
            flush=True,
        )
        rows = [
            sampling_phase(config, work, vocab, blocks, head, args.steps, bf16),
            reward_phase(config, work, vocab, blocks, args.steps),
            *ppo_phases(config, work, vocab, blocks, head, args.steps),
        ]
    print(f"{'phase':44} {'tokens/s':>12} {'TFLOP/s':>9} {'MFU':>7}")
    for row in rows:
        row["mfu"] = row["tflops"] / peak if peak else None
        mfu = f"{100 * row['mfu']:6.1f}%" if row["mfu"] is not None else "    n/a"
        print(f"{row['phase']:44} {row['tokens_per_second']:12,.0f} {row['tflops']:9.2f} {mfu}")
    seconds = time.perf_counter() - started
    print(f"total {seconds:.0f} s")
    print(json.dumps({"device": name, "peak_tflops": peak, "seconds": seconds, "phases": rows}))
    return 0


def random_ids(rng: random.Random, vocab: int, length: int) -> list[int]:
    return [rng.randrange(1, vocab) for _ in range(length)]  # 0 is EOS


def timed(run, sync) -> float:
    sync()
    begin = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - begin


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def row(phase: str, tokens: float, flops: float, seconds: float) -> dict:
    return {
        "phase": phase,
        "tokens_per_second": tokens / seconds,
        "tflops": flops / seconds / 1e12,
        "seconds": seconds,
    }


def sampling_phase(config, work, vocab, blocks, head, steps, bf16) -> dict:
    """The labelers' comparisons: K responses to each query from one prompt pass."""
    import torch

    from training.ml import precision
    from training.ml.models import load_model_and_tokenizer, model_device
    from training.ml.sampling import sample_responses

    s = config.sampling
    model, tokenizer = load_model_and_tokenizer(str(work / "model"))
    rng = random.Random(1)
    queries = [random_ids(rng, vocab, s.query_length) for _ in range(8 * s.batch_size)]
    generator = torch.Generator(device=model_device(model)).manual_seed(0)

    def run() -> None:
        with precision.autocast(model_device(model), bf16):
            sample_responses(model, tokenizer, queries, s, generator=generator)

    timed(run, synchronize)  # warm-up
    seconds = sum(timed(run, synchronize) for _ in range(steps)) / steps
    generated = len(queries) * s.k * s.response_length  # every row runs R steps at most
    flops = 2 * (blocks * len(queries) * s.query_length + (blocks + head) * generated)
    phase = f"sampling (K={s.k}, {s.batch_size} queries/pass)"
    return row(phase, generated, flops, seconds)


def synthetic_labels(count: int, config, vocab: int) -> list[dict]:
    rng, s = random.Random(2), config.sampling
    labels = []
    for i in range(count):
        record = {
            "query": "q",
            "query_token_ids": random_ids(rng, vocab, s.query_length),
            "sample_token_ids": [random_ids(rng, vocab, s.response_length) for _ in range(s.k)],
            "best": i % s.k,
        }
        labels.append({**record, **{f"sample{j}": "s" for j in range(s.k)}})
    return labels


def reward_phase(config, work, vocab, blocks, steps) -> dict:
    """Reward-model steps of ``batch_size`` labels: per-step times from the progress callback
    (synchronized), the first step left out as warm-up."""
    from training.ml.reward import train_reward_model

    r, s = config.reward, config.sampling
    r.normalization_samples = 2 * s.k
    stamps: list[float] = []

    def progress(done: int, total: int) -> None:
        synchronize()
        stamps.append(time.perf_counter())

    labels = synthetic_labels(r.batch_size * (steps + 1), config, vocab)
    train_reward_model(labels, str(work / "model"), work / "rm", r, s, progress=progress)
    seconds = (stamps[-1] - stamps[0]) / steps
    tokens = r.batch_size * (s.query_length + s.k * s.response_length)  # prompt once
    return row(
        f"reward model step ({r.batch_size} labels x K={s.k})", tokens, 6 * blocks * tokens, seconds
    )


def ppo_phases(config, work, vocab, blocks, head, steps) -> list[dict]:
    """PPO batches against the reward model just trained: rollout (sampling, scoring, old and
    reference log-probs and values) and the PPO epochs (forward + backward), from each batch's
    synchronized timings; the first batch is the warm-up."""
    from training.ml.ppo import train_policy

    p, s = config.ppo, config.sampling
    p.total_episodes = p.batch_size * (steps + 1)
    rng = random.Random(3)
    queries = [random_ids(rng, vocab, s.query_length) for _ in range(p.batch_size)]
    history = train_policy(str(work / "model"), work / "rm", queries, work / "ppo", p, s)
    timed_batches = history[1:]
    rollout = sum(h["rollout_seconds"] for h in timed_batches) / len(timed_batches)
    train = sum(h["train_seconds"] for h in timed_batches) / len(timed_batches)
    tq, rl, b = s.query_length, s.response_length, p.batch_size
    # Rollout: sampling (prompt pass + R tokens with logits), policy and reference passes
    # (logits for R tokens), the reward model on query + response.
    sampling = blocks * b * tq + (blocks + head) * b * rl
    passes = 2 * (blocks * b * (tq + rl) + head * b * rl)
    rollout_flops = 2 * sampling + 2 * passes + 2 * blocks * b * (tq + rl)
    epoch_tokens = p.ppo_epochs * b * (tq + rl)
    train_flops = 6 * (blocks * epoch_tokens + head * p.ppo_epochs * b * rl)
    return [
        row(f"PPO rollout ({b} episodes, R={rl})", b * rl, rollout_flops, rollout),
        row(
            f"PPO epochs fwd+bwd ({p.ppo_epochs} x {b} episodes)", epoch_tokens, train_flops, train
        ),
        row(
            "PPO step (rollout + epochs)",
            b * (tq + rl),
            rollout_flops + train_flops,
            rollout + train,
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
