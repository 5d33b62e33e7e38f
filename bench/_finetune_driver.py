"""The worker for ours and the hand loop, run by the project's venv:

    .venv/bin/python bench/_finetune_driver.py THREADS

Requests (JSON lines, see :func:`_finetune_common.serve`): ``train`` with ``trainer``
(``ours`` or ``hand``), ``mode`` (``padding`` or ``packing``), ``model``, ``rows`` (a JSON
file of ``{"input_ids", "labels"}``), ``settings``, ``pad_id`` and ``scratch``;
``fixed_costs`` (``model``, ``settings``); ``versions``.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import _finetune_hand
import _finetune_ours
from _finetune_common import serve


def train(req: dict[str, Any]) -> dict[str, Any]:
    if req["trainer"] == "ours":
        return _finetune_ours.train(req)
    return _finetune_hand.train(req)


def versions(_: dict[str, Any]) -> dict[str, Any]:
    names = ("torch", "transformers", "peft", "accelerate")
    return {"versions": {n: importlib.metadata.version(n) for n in names}}


if __name__ == "__main__":
    serve({"train": train, "fixed_costs": _finetune_ours.fixed_costs, "versions": versions})
