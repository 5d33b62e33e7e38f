"""PII detection: Presidio's engine with offline pattern recognizers and a bundled NER.

Why this module exists: Presidio out of the box needs ``en_core_web_lg`` (a download that
cannot happen here), fetches the public-suffix list over the network on first use, and
with a blank spaCy pipeline finds no people, places or organisations at all. The
:class:`Detector` keeps Presidio's :class:`~presidio_analyzer.AnalyzerEngine`,
registry, pattern recognizers and context enhancer, and changes what matters:

* NER: a small spaCy pipeline shipped in :mod:`genai.dlp._ner` (trained on synthetic
  data only) runs as the engine's NLP pipeline; its spans become findings scored by the
  precision measured on held-out synthetic data for the span's label, case and length.
  A configured spaCy pipeline directory or a local Hugging Face token-classification
  model replaces it; ``ner="none"`` keeps patterns only.
* An address the NER runs on into the phone number on its next line is cut back so the
  phone number is reported too. An analysis holds a lock (spaCy's ``Language`` is not
  documented as thread-safe) and runs inside spaCy's memory zone, so the words of the
  texts it saw do not stay in the vocabulary: memory stays flat however many distinct
  texts a gateway checks.
* Patterns: Presidio's (e-mail with an offline suffix list, cards with Luhn, IBAN, IP,
  URL, US SSN/ITIN/passport/driver licence, crypto, dates, phone numbers through
  ``phonenumbers``) plus a few of ours: phone numbers in international layouts, ages,
  ZIP codes next to a context word, weekdays/months/years as dates.
* Overlaps: Presidio only merges duplicates of one type. Here, one finding per
  character: validated identifiers (card, IBAN, e-mail, ...) beat NER spans, NER spans
  beat weak patterns (so a card number is not a phone and a street number is not a
  ZIP code); within a tier the higher score, then the longer span wins.

Weak patterns (Presidio scores them 0.01–0.3 and relies on context words) are dropped
unless a context word lifted them to :data:`MIN_PATTERN_SCORE`, so the default
``threshold=0`` does not return every number in a text as a driver licence.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import threading
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genai.errors import ConfigError, MissingDependencyError, ValidationError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult

__all__ = ["MIN_PATTERN_SCORE", "PATTERN_ENTITIES", "Detector", "Finding"]

#: A pattern finding below this score (after context enhancement) is not reported.
MIN_PATTERN_SCORE = 0.35
_EXTRA = "dlp"
_PURPOSE = "PII detection (genai.dlp)"

# Conflict tiers: lower wins an overlap. Identifiers with a checksum or a strict syntax
# first, then NER spans (and addresses), then everything else.
_TIER_STRICT = frozenset(
    {"CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "URL", "IP_ADDRESS", "US_SSN",
     "CRYPTO", "MAC_ADDRESS", "US_ITIN"}
)  # fmt: skip
_NER_RECOGNIZER = "GenaiNerRecognizer"
# spaCy / OntoNotes / CoNLL labels -> Presidio entity names; unlisted labels are ignored.
_LABEL_MAP = {
    "PERSON": "PERSON", "PER": "PERSON", "LOCATION": "LOCATION", "LOC": "LOCATION",
    "GPE": "LOCATION", "FAC": "LOCATION", "ORGANIZATION": "ORGANIZATION", "ORG": "ORGANIZATION",
    "STREET_ADDRESS": "STREET_ADDRESS", "ADDRESS": "STREET_ADDRESS", "TITLE": "TITLE",
    "NRP": "NRP", "NORP": "NRP", "DATE_TIME": "DATE_TIME", "DATE": "DATE_TIME",
    "TIME": "DATE_TIME", "AGE": "AGE",
}  # fmt: skip
_NUMERIC_OK = frozenset({"DATE_TIME", "AGE"})
_LETTER = re.compile(r"[^\W\d_]")
_SEPARATORS = " \t\r\n,;:|-\\/"
#: What the pattern recognizers find (known without loading anything).
PATTERN_ENTITIES = frozenset(
    {"CREDIT_CARD", "CRYPTO", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS",
     "PHONE_NUMBER", "URL", "US_ITIN", "US_DRIVER_LICENSE", "US_PASSPORT", "US_SSN", "AGE",
     "ZIP_CODE", "TITLE", "NRP"}
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One detected entity: ``text[start:end]`` is ``entity_type`` with ``score``."""

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str


def _require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(package, extra=_EXTRA, purpose=_PURPOSE)


def _ner_kind(ner: str | None) -> tuple[str, Path | None]:
    """Classify the ``ner`` argument without loading anything: (kind, path)."""
    if ner is None:
        from ._ner import MODEL_DIR

        return "bundled", MODEL_DIR
    if ner.strip().lower() == "none":
        return "none", None
    path = Path(ner).expanduser()
    if (path / "config.cfg").is_file() and (path / "meta.json").is_file():
        return "spacy", path
    if (path / "config.json").is_file():
        return "hf", path
    if not path.exists():
        raise ConfigError(
            f"NER model directory {ner!r} does not exist; pass a spaCy "
            "pipeline directory, a local Hugging Face token-classification "
            "model directory, None for the bundled model, or 'none'"
        )
    raise ConfigError(
        f"{ner!r} is neither a spaCy pipeline directory (config.cfg + "
        "meta.json) nor a Hugging Face model directory (config.json)"
    )


def _labels_on_disk(kind: str, path: Path | None) -> frozenset[str]:
    """The Presidio entities a NER directory can produce, read from its metadata files."""
    labels: Iterable[str] = ()
    try:
        if kind in ("bundled", "spacy") and path is not None:
            meta = json.loads((path / "meta.json").read_text())
            labels = meta.get("labels", {}).get("ner", [])
        elif kind == "hf" and path is not None:
            config = json.loads((path / "config.json").read_text())
            raw = config.get("id2label", {}).values()
            labels = (str(label).split("-", 1)[-1] for label in raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the NER model metadata in {path}: {exc}") from exc
    return frozenset(_LABEL_MAP[label] for label in labels if label in _LABEL_MAP)


class Detector:
    """Finds PII in text. Cheap to construct; models load on :meth:`warm` or first use.

    ``ner=None`` uses the bundled model, a path uses that spaCy pipeline or Hugging Face
    token-classification model directory, ``"none"`` runs the pattern recognizers only.
    ``extra_recognizers`` are Presidio recognizers added to the registry (for the same
    ``language``).
    """

    def __init__(
        self,
        *,
        ner: str | None = None,
        extra_recognizers: Sequence[EntityRecognizer] = (),
        language: str = "en",
    ) -> None:
        _require("presidio_analyzer", "presidio-analyzer")
        _require("spacy", "spacy")
        self._kind, self._path = _ner_kind(ner)
        if self._kind == "hf":
            _require("transformers", "transformers")
        self.language = language
        self._extra = tuple(extra_recognizers)
        self._lock = threading.Lock()  # guards loading
        self._nlp_lock = threading.Lock()  # spaCy's Language is not documented thread-safe
        self._engine: AnalyzerEngine | None = None
        self._ner_entities = _labels_on_disk(self._kind, self._path)
        extra = {e for r in self._extra for e in r.supported_entities}
        self.supported_entities: frozenset[str] = frozenset(
            PATTERN_ENTITIES | self._ner_entities | extra
        )

    def __repr__(self) -> str:
        where = self._path if self._kind in ("spacy", "hf") else self._kind
        return f"Detector(ner={where!s}, language={self.language!r})"

    # -- loading ------------------------------------------------------------------------

    def warm(self) -> None:
        """Load the NLP pipeline and recognizers now (otherwise on the first call)."""
        self._get_engine()

    def _get_engine(self) -> AnalyzerEngine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                from ._ner._presidio import build_engine

                self._engine = build_engine(
                    kind=self._kind,
                    path=self._path,
                    language=self.language,
                    label_map=_LABEL_MAP,
                    ner_entities=self._ner_entities,
                    extra=self._extra,
                )
            return self._engine

    # -- analysis -----------------------------------------------------------------------

    def _check(self, entities: Collection[str] | None, threshold: float) -> list[str] | None:
        if not 0.0 <= threshold <= 1.0:
            raise ValidationError(
                f"threshold must be within [0, 1], got {threshold!r}", field="threshold"
            )
        if entities is None:
            return None
        unknown = sorted(set(entities) - self.supported_entities)
        if unknown:
            raise ValidationError(
                f"unsupported entity types {unknown}; this detector supports "
                f"{sorted(self.supported_entities)}",
                field="entities",
            )
        return sorted(entities)

    def analyze(
        self, text: str, *, entities: Collection[str] | None = None, threshold: float = 0.0
    ) -> list[Finding]:
        """Non-overlapping findings in ``text``, sorted by start."""
        wanted = self._check(entities, threshold)
        if not text.strip() or wanted == []:
            return []
        engine = self._get_engine()
        with self._nlp_lock, _memory_zone(engine, self.language):
            artifacts = engine.nlp_engine.process_text(text, self.language)
            raw = engine.analyze(
                text=text, language=self.language, entities=wanted, nlp_artifacts=artifacts
            )
            return _resolve(text, raw, threshold)

    def analyze_batch(
        self,
        texts: Sequence[str],
        *,
        entities: Collection[str] | None = None,
        threshold: float = 0.0,
    ) -> list[list[Finding]]:
        """:meth:`analyze` for many texts; the NLP pipeline runs them in batches."""
        wanted = self._check(entities, threshold)
        if wanted == [] or not texts:
            return [[] for _ in texts]
        engine = self._get_engine()
        out: list[list[Finding]] = []
        with self._nlp_lock, _memory_zone(engine, self.language):
            processed = engine.nlp_engine.process_batch(list(texts), self.language, batch_size=64)
            for text, artifacts in processed:
                if not text.strip():
                    out.append([])
                    continue
                raw = engine.analyze(
                    text=text, language=self.language, entities=wanted, nlp_artifacts=artifacts
                )
                out.append(_resolve(text, raw, threshold))
        return out


def _memory_zone(engine: AnalyzerEngine, language: str) -> AbstractContextManager[object]:
    """spaCy's memory zone over one analysis: the strings and lexemes its texts added to
    the vocabulary (every new word, e-mail address, number...) and its tokenizer-cache
    entries are freed when it ends. Without it a long-running process grows by ~2 KiB per
    distinct text, for ever. Nothing of spaCy's may outlive the zone: findings are plain
    values, built inside it."""
    models = getattr(engine.nlp_engine, "nlp", None)
    nlp = models.get(language) if isinstance(models, dict) else None
    zone = getattr(nlp, "memory_zone", None)  # spaCy 3.8+
    return zone() if zone is not None else contextlib.nullcontext()


def _tier(result: RecognizerResult) -> int:
    if result.entity_type in _TIER_STRICT and result.score >= 0.5:
        return 0
    recognizer = (result.recognition_metadata or {}).get("recognizer_name", "")
    return 1 if recognizer == _NER_RECOGNIZER else 2


def _name(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get("recognizer_name", "unknown"))


def _resolve(text: str, raw: Sequence[RecognizerResult], threshold: float) -> list[Finding]:
    """Keep one finding per character: by tier, then score, then length (see module doc)."""
    candidates = [
        r
        for r in raw
        if r.score >= threshold
        and (_name(r) == _NER_RECOGNIZER or r.score >= MIN_PATTERN_SCORE)
        and (
            r.entity_type in _NUMERIC_OK
            or _LETTER.search(text, r.start, r.end)
            or _name(r) != _NER_RECOGNIZER
        )
    ]
    candidates.sort(key=lambda r: (_tier(r), -r.score, -(r.end - r.start), r.start))
    taken: list[RecognizerResult] = []
    for result in candidates:
        clashes = [t for t in taken if result.start < t.end and t.start < result.end]
        if not clashes:
            taken.append(result)
        elif len(clashes) == 1 and _tier(result) == 2 and _tier(clashes[0]) == 1:
            trimmed = _trim(text, clashes[0], result)
            if trimmed is not None:
                taken[taken.index(clashes[0])] = trimmed
                taken.append(result)
    taken.sort(key=lambda r: r.start)
    return _merge_addresses(text, taken)


def _trim(text: str, span: RecognizerResult, edge: RecognizerResult) -> RecognizerResult | None:
    """``span`` (a NER finding) cut back to end before pattern ``edge``, or None.

    The NER sometimes runs an address on into the phone number on the next line; the
    pattern is more precise there. Only a tail is cut: where ``edge`` reaches past the
    span's end or starts a line of its own, and only while letters remain.
    """
    from presidio_analyzer import RecognizerResult

    start, end = span.start, span.end
    starts_line = text[start : edge.start].rstrip(" \t>|").endswith("\n")
    if edge.start > start and (edge.end >= end or starts_line):
        end = edge.start
        while end > start and text[end - 1] in _SEPARATORS:
            end -= 1
    else:
        return None
    if not _LETTER.search(text, start, end):
        return None
    return RecognizerResult(
        span.entity_type, start, end, span.score, recognition_metadata=span.recognition_metadata
    )


def _merge_addresses(text: str, results: list[RecognizerResult]) -> list[Finding]:
    """Join address pieces the NER split at a newline or comma into one finding."""
    out: list[Finding] = []
    for r in results:
        finding = Finding(r.entity_type, r.start, r.end, round(float(r.score), 4), _name(r))
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.entity_type == finding.entity_type == "STREET_ADDRESS"
            and not text[prev.end : finding.start].strip(" \t\r\n,")
        ):
            score = max(prev.score, finding.score)
            out[-1] = Finding("STREET_ADDRESS", prev.start, finding.end, score, prev.recognizer)
            continue
        out.append(finding)
    return out
