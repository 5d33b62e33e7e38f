"""Many LoRA adapters on one base model, each row of a batch with its own (S-LoRA style).

Each targeted ``nn.Linear`` is wrapped once. Every adapter's A and B matrices sit in one
stacked tensor per layer (slot 0 is all zeros: the base model), padded to the largest rank.
A forward pass gathers each row's matrices and applies them with two batched matmuls, so
the cost per layer does not grow with the number of distinct adapters in the batch, as it
does with PEFT's per-adapter loop. PEFT still parses the adapter's config and reads its
weights; LoRA variants this runtime does not implement are refused by name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genai.errors import ValidationError

__all__ = ["MultiLoRA"]

_UNSUPPORTED = {
    "use_dora": "DoRA",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D layers)",
    "modules_to_save": "modules_to_save",
    "layers_to_transform": "layers_to_transform",
    "rank_pattern": "rank_pattern",
    "alpha_pattern": "alpha_pattern",
    "trainable_token_indices": "trainable_token_indices",
}


class _Slots:
    """Which slot each row of the batch uses, shared by every wrapped layer."""

    def __init__(self) -> None:
        self.index: torch.Tensor | None = None  # (rows,) slot per row
        self.single: int | None = None  # the one slot every row uses, if so


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, slots: _Slots) -> None:
        super().__init__()
        self.base = base
        self.slots = slots
        weight = base.weight
        self.a_stack = weight.new_zeros((1, base.in_features, 0))  # (slots, in, rank)
        self.b_stack = weight.new_zeros((1, 0, base.out_features))  # (slots, rank, out)
        self.scales = weight.new_zeros((1,))
        self.adapters: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def set_adapters(
        self, adapters: dict[int, tuple[torch.Tensor, torch.Tensor, float]], count: int
    ) -> None:
        """Rebuild the stacks: ``adapters`` maps slot → (A (r,in), B (out,r), scale)."""
        self.adapters = adapters
        rank = max((a.shape[0] for a, _, _ in adapters.values()), default=0)
        w = self.base.weight
        a_stack = w.new_zeros((count, self.base.in_features, rank))
        b_stack = w.new_zeros((count, rank, self.base.out_features))
        scales = w.new_zeros((count,))
        for slot, (a, b, scale) in adapters.items():
            r = a.shape[0]
            a_stack[slot, :, :r] = a.t().to(w.dtype)
            b_stack[slot, :r, :] = b.t().to(w.dtype)
            scales[slot] = scale
        self.a_stack, self.b_stack, self.scales = a_stack, b_stack, scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x)
        if self.a_stack.shape[-1] == 0:
            return out
        single = self.slots.single
        if single is not None:
            if single == 0 or single not in self.adapters:
                return out
            delta = (x @ self.a_stack[single]) @ self.b_stack[single]
            return out + delta * self.scales[single]
        index = self.slots.index
        if index is None:
            return out
        a, b, s = self.a_stack[index], self.b_stack[index], self.scales[index]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        delta = torch.bmm(torch.bmm(flat, a), b) * s[:, None, None]
        return out + delta.reshape(out.shape)


class MultiLoRA:
    """The adapters of one base model: load, unload, and choose per row."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._slots = _Slots()
        self._layers: dict[str, LoRALinear] = {}
        self._names: list[str] = []  # slot i + 1 holds _names[i]
        self._weights: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor, float]]] = {}

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def load(self, name: str, folder: Path) -> None:
        """Read an adapter (refusing what does not fit the base) and give it a slot."""
        config, weights = _read(folder)
        per_module: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
        scale = config.lora_alpha / (math.sqrt(config.r) if config.use_rslora else config.r)
        modules = dict(self.model.named_modules())
        for module_name in sorted({k.rsplit(".lora_", 1)[0] for k in weights}):
            target = _resolve(modules, module_name)
            if target is None:
                raise ValidationError(
                    f"adapter {folder} targets {module_name}, which this base model does not have: "
                    "it was trained on another model",
                    field="lora_path",
                )
            a = weights[f"{module_name}.lora_A.weight"]
            b = weights[f"{module_name}.lora_B.weight"]
            linear = target.base if isinstance(target, LoRALinear) else target
            if (
                not isinstance(linear, nn.Linear)
                or a.shape[1] != linear.in_features
                or b.shape[0] != linear.out_features
            ):
                raise ValidationError(
                    f"adapter {folder} does not fit {module_name} of this base model "
                    f"(adapter {tuple(b.shape[:1]) + tuple(a.shape[1:])} vs base "
                    f"{_shape(linear)}): "
                    "it was trained on another model",
                    field="lora_path",
                )
            per_module[_canonical(modules, module_name)] = (a, b, scale)
        if not per_module:
            raise ValidationError(f"adapter {folder} holds no LoRA weights", field="lora_path")
        self._weights[name] = per_module
        if name not in self._names:
            self._names.append(name)
        self._rebuild()

    def unload(self, name: str) -> None:
        self._names.remove(name)
        del self._weights[name]
        self._rebuild()

    def choose(self, adapters: list[str | None]) -> None:
        """Set each row's adapter (None: the base model) for the next forward pass."""
        slots = [0 if a is None else self._names.index(a) + 1 for a in adapters]
        first = slots[0] if slots else 0
        if all(s == first for s in slots):
            self._slots.single, self._slots.index = first, None
        else:
            device = next(self.model.parameters()).device
            self._slots.single = None
            self._slots.index = torch.tensor(slots, dtype=torch.long, device=device)

    def _rebuild(self) -> None:
        needed = {m for per in self._weights.values() for m in per}
        for module_name in needed - set(self._layers):
            parent_name, _, child = module_name.rpartition(".")
            parent = self.model.get_submodule(parent_name)
            wrapped = LoRALinear(getattr(parent, child), self._slots)
            setattr(parent, child, wrapped)
            self._layers[module_name] = wrapped
        count = len(self._names) + 1
        for module_name, layer in self._layers.items():
            adapters = {
                slot + 1: self._weights[n][module_name]
                for slot, n in enumerate(self._names)
                if module_name in self._weights[n]
            }
            layer.set_adapters(adapters, count)


def _read(folder: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    from peft import LoraConfig
    from peft.utils import load_peft_weights

    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (ValueError, TypeError, OSError) as error:
        raise ValidationError(
            f"{folder} is not a LoRA adapter: {error}", field="lora_path"
        ) from None
    for option, label in _UNSUPPORTED.items():
        if getattr(config, option, None):
            raise ValidationError(
                f"adapter {folder} uses {label}, which this server does not "
                "serve: merge the adapter into its base model instead",
                field="lora_path",
            )
    if config.bias not in ("none", None):
        raise ValidationError(
            f"adapter {folder} trains biases (bias={config.bias!r}), which this "
            "server does not serve",
            field="lora_path",
        )
    raw = load_peft_weights(str(folder), device="cpu")
    weights = {}
    for key, tensor in raw.items():
        if ".lora_A." not in key and ".lora_B." not in key:
            raise ValidationError(
                f"adapter {folder} holds {key}, which is not a LoRA matrix", field="lora_path"
            )
        name = key.removeprefix("base_model.model.").replace(".default.weight", ".weight")
        weights[name] = tensor.float()
    return config, weights


def _shape(layer: nn.Module) -> tuple[object, object]:
    return getattr(layer, "out_features", "?"), getattr(layer, "in_features", "?")


def _resolve(modules: dict[str, nn.Module], name: str) -> nn.Module | None:
    """The base module a PEFT key names (PEFT keys start below the task wrapper)."""
    for candidate in (name, f"model.{name}", name.removeprefix("model.")):
        if candidate in modules:
            return modules[candidate]
    return None


def _canonical(modules: dict[str, nn.Module], name: str) -> str:
    for candidate in (name, f"model.{name}", name.removeprefix("model.")):
        if candidate in modules:
            return candidate
    return name
