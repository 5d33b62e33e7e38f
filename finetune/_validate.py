"""``validate``: the row checks of a training run, alone (``genai finetune validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finetune._data import ValidationReport, validate_rows
from finetune._tokens import Encoder
from genai.errors import ValidationError
from genai.registry import read_rows

if TYPE_CHECKING:
    from genai import Client

__all__ = ["validate"]


def validate(
    dataset: str | Path,
    *,
    client: Client | None = None,
    project: str | None = None,
    split: str | None = None,
    base_model: str | Path | None = None,
    fmt: str = "auto",
    max_length: int | None = None,
    loss_on: str = "auto",
) -> ValidationReport:
    """Check every row of a registered dataset (``dataset:NAME[@V]``, with ``client`` and
    ``project``) or of a local .jsonl, .json or .csv file. With ``base_model`` (a registry
    reference, or a model directory) each row is also rendered with its chat template and
    tokenized: the template must accept it, some token must be trained, and it must fit
    ``max_length``."""
    text = str(dataset)
    if Path(text).is_file():
        rows = read_rows(text)
    elif client is not None and project is not None:
        rows = client.registry.datasets.rows(project, text, split=split)
    else:
        raise ValidationError(
            f"{text!r} is not a file here: give a .jsonl, .json or .csv file, or a dataset "
            "reference with a project (-p)",
            field="dataset",
        )
    encoder = None
    if base_model is not None:
        from transformers import AutoTokenizer

        folder = Path(str(base_model))
        if not folder.is_dir():
            if client is None or project is None:
                raise ValidationError(
                    f"{base_model!r} is not a model directory: give one, or a registry "
                    "reference with a project (-p)",
                    field="base_model",
                )
            folder = client.registry.models.local_path(project, str(base_model))
        encoder = Encoder(AutoTokenizer.from_pretrained(str(folder)), loss_on=loss_on)
    report, _ = validate_rows(rows, fmt=fmt, encoder=encoder, max_length=max_length)
    return report
