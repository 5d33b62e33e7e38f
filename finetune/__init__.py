"""Fine-tuning: LoRA, QLoRA, DoRA and rsLoRA adapters on registered models and datasets.

    >>> import finetune
    >>> job = finetune.train(client, "support-bot", {                 # doctest: +SKIP
    ...     "base_model": "model:smollm2", "dataset": "dataset:faq", "epochs": 3})
    >>> job.adapter.ref, job.run.status                               # doctest: +SKIP
    ('adapter:finetune@1', 'finished')

A run validates every row first (:func:`validate`), applies the project's DLP policy and
registers the treated rows as a derived dataset, trains with transformers' ``Trainer`` and
PEFT, logs its metrics per step to a registry run, checkpoints atomically, and registers
the adapter with the tokenizer and chat template it was trained with. :func:`resume`
continues an interrupted run exactly where it stopped. It imports ``genai`` only.
"""

from finetune._config import DataFormat, FineTuneConfig, LossOn, Method, load_config
from finetune._data import Example, Problem, ValidationReport, detect_format, validate_rows
from finetune._run import FineTuneJob, prepare, resume, train
from finetune._tokens import IGNORE, Collator, Encoded, Encoder
from finetune._validate import validate
from finetune._vendor import VendorFineTuneJob

__all__ = [
    "IGNORE",
    "Collator",
    "DataFormat",
    "Encoded",
    "Encoder",
    "Example",
    "FineTuneConfig",
    "FineTuneJob",
    "LossOn",
    "Method",
    "Problem",
    "ValidationReport",
    "VendorFineTuneJob",
    "detect_format",
    "load_config",
    "prepare",
    "resume",
    "train",
    "validate",
    "validate_rows",
]
