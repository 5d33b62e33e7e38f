"""Classification answers: the first label an output names, against the reference label."""

from __future__ import annotations

import re
from collections.abc import Sequence

from eval._metric import MetricEnv
from eval._metrics_text import TextMetric, _binary
from eval._types import MetricKind, MetricValue, Sample
from genai.errors import ValidationError

__all__ = ["LabelMatch"]


class LabelMatch(TextMetric):
    """1 when the first of ``labels`` the output names (as a whole word, any case) is the
    row's reference label; unmeasured when the reference is not one of ``labels``. An
    output naming none of them scores 0 (it did not answer the question asked)."""

    default_name = "label_match"
    kind: MetricKind = "binary"

    def __init__(
        self, *, labels: Sequence[str], name: str | None = None, env: MetricEnv | None = None
    ) -> None:
        super().__init__(name=name, env=env)
        words = list(labels) if isinstance(labels, list | tuple) else []
        if not words or not all(isinstance(x, str) and x.strip() for x in words):
            yaml = any(isinstance(x, bool) for x in words)
            raise ValidationError(
                f"labels is a list of label words (e.g. [yes, no, maybe]), not {labels!r}"
                + (
                    " (quote them in YAML, which reads yes and no as true and false)"
                    if yaml
                    else ""
                ),
                field="labels",
            )
        self.labels = [x.strip().casefold() for x in labels]
        alternatives = "|".join(re.escape(x) for x in sorted(self.labels, key=len, reverse=True))
        self._find = re.compile(rf"\b({alternatives})\b", re.IGNORECASE)

    def measure(self, output: str, reference: str, sample: Sample) -> MetricValue:
        expected = reference.strip().casefold()
        if expected not in self.labels:
            return MetricValue.unmeasured(
                f"the reference {reference!r} is not one of the labels {', '.join(self.labels)}"
            )
        found = self._find.search(output)
        return _binary(found is not None and found.group(1).casefold() == expected)
