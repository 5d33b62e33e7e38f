"""What the registry reads from a PEFT adapter directory: its LoRA configuration and
method, the chat template and tokenizer it was trained with, and the names it saves."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai.errors import ValidationError
from genai.models._adapter_lint import vllm_adapter_problems

__all__ = ["METHODS", "AdapterFiles", "read_adapter_dir"]

#: Adapter methods: plain LoRA, LoRA on a 4-bit base, weight-decomposed, rank-stabilised.
METHODS = ("lora", "qlora", "dora", "rslora")
_HEADER_CAP = 64 << 20  # a safetensors header larger than this is not read for names


@dataclass(frozen=True)
class AdapterFiles:
    config: dict[str, Any]
    method: str | None  # what the config says: dora, rslora, or None (plain LoRA)
    chat_template: str = ""
    tokenizer_sha256: str = ""
    names: list[str] = field(default_factory=list)  # files, and the tensors of .safetensors

    @property
    def lint(self) -> list[str]:
        return vllm_adapter_problems(self.config, self.names)


def read_adapter_dir(path: Path) -> AdapterFiles:
    config = _read_config(path)
    return AdapterFiles(
        config=config,
        method=config_method(config),
        chat_template=_chat_template(path),
        tokenizer_sha256=_sha256(path / "tokenizer.json"),
        names=_names(path),
    )


def config_method(config: Mapping[str, Any]) -> str | None:
    if config.get("use_dora"):
        return "dora"
    if config.get("use_rslora"):
        return "rslora"
    return None


def _read_config(path: Path) -> dict[str, Any]:
    config = path / "adapter_config.json"
    if not config.is_file():
        raise ValidationError(
            f"{path} is not a PEFT adapter directory: it has no adapter_config.json", field="path"
        )
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError as error:
        raise ValidationError(f"{config} is not valid JSON: {error}", field="path") from None
    if not isinstance(data, dict) or str(data.get("peft_type", "LORA")).upper() != "LORA":
        raise ValidationError(f"{config} does not describe a LoRA adapter", field="path")
    return data


def _chat_template(path: Path) -> str:
    """``chat_template.jinja``, else tokenizer_config.json's ``chat_template`` (its default
    one when it holds several), else ''."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return ""
    template = config.get("chat_template") if isinstance(config, dict) else None
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else ""


def _sha256(file: Path) -> str:
    if not file.is_file():
        return ""
    digest = hashlib.sha256()
    with open(file, "rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _names(path: Path) -> list[str]:
    names = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        names.append(file.relative_to(path).as_posix())
        if file.suffix == ".safetensors":
            names.extend(_tensor_names(file))
    return names


def _tensor_names(file: Path) -> list[str]:
    """The tensor names of a safetensors file, from its header alone (none when the file
    is not one)."""
    try:
        with open(file, "rb") as src:
            size_bytes = src.read(8)
            if len(size_bytes) != 8:
                return []
            (size,) = struct.unpack("<Q", size_bytes)
            if size > _HEADER_CAP:
                return []
            header = json.loads(src.read(size))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return []
    if not isinstance(header, dict):
        return []
    return sorted(str(name) for name in header if name != "__metadata__")
