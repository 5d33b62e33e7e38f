"""A project's DLP policy: what to do with each kind of personal data, and how sure to be.

A policy lives in the project's options under ``dlp`` (set with ``genai dlp policy set``)
or in a YAML/JSON file::

    default_action: pseudonymise        # allow | redact | mask | hash | pseudonymise | block
    threshold: 0.5                      # findings scored below are ignored
    thresholds:                         # per entity type; these are the defaults (README)
      PHONE_NUMBER: 0.4                 #   a phone number without a context word scores 0.4
      ZIP_CODE: 0.4                     #   a ZIP code next to "zip"/"postal" scores 0.45
      US_DRIVER_LICENSE: 0.4
      URL: 0.6                          #   a bare host name (README.md) scores 0.5
    entities:
      CREDIT_CARD: {action: pseudonymise, threshold: 0.3}
      US_SSN: block
      URL: allow
      PHONE_NUMBER: {action: mask, keep_last: 4}
    recognizers:
      - {kind: deny_list, entity_type: PROJECT_CODENAME, values: [Bluebird, Nightjar]}
      - {kind: regex, entity_type: EMPLOYEE_ID, patterns: ['\\bE\\d{6}\\b'], context: [employee]}
      - {kind: account_number, entity_type: ACCOUNT, formats: ['AC-####-####'], score: 0.7}
    allow_list: [support@example.com]   # values that are never treated as personal data
    fail_open: false                    # detection failed or timed out: refuse (the default)
    timeout_s: 5
    vault_ttl_s: 3600                   # how long a session's pseudonyms are kept
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from genai.errors import ConfigError, MissingDependencyError, ValidationError

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer

__all__ = [
    "ACTIONS",
    "DEFAULT_THRESHOLDS",
    "POLICY_EXAMPLE",
    "AccountNumberRecognizer",
    "DenyListRecognizer",
    "EntityRule",
    "Policy",
    "RegexRecognizer",
    "policy_from_options",
]


def _example(doc: str | None, marker: str = "    default_action:") -> str:
    if not doc or marker not in doc:
        return ""
    return textwrap.dedent(doc[doc.index(marker) :]).strip() + "\n"


#: A policy file with every setting (YAML), as this module's docstring shows it.
POLICY_EXAMPLE = _example(__doc__)

Action = Literal["allow", "redact", "mask", "hash", "pseudonymise", "block"]
ACTIONS: tuple[str, ...] = ("allow", "redact", "mask", "hash", "pseudonymise", "block")
_SPELLINGS = {
    "pseudonymize": "pseudonymise",
    "pseudonym": "pseudonymise",
    "tokenize": "pseudonymise",
}
_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,47}")
OPTION_KEY = "dlp"

#: Per-entity thresholds every policy starts from (its ``thresholds`` replace them one by
#: one; ``entities.X.threshold`` beats both; other types use ``threshold``). Chosen and
#: measured with ``bench/dlp_quality.py``: precision and recall per entity in the README.
#: Names, places, organisations and addresses use ``threshold`` (0.5): the detector scores
#: the NER's weak spans (ordinary words, code, arithmetic) 0.3, or 0.65 with a context word.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "PHONE_NUMBER": 0.4,
    "ZIP_CODE": 0.4,
    "US_DRIVER_LICENSE": 0.4,
    "URL": 0.6,
}


def _action(value: object) -> object:
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _SPELLINGS.get(lowered, lowered)
    return value


def _entity_name(value: str) -> str:
    name = value.strip().upper()
    if not _ENTITY.fullmatch(name) or name.endswith("_"):
        raise ValueError(
            f"{value!r} is not an entity type: use upper-case letters, digits and underscores "
            "(e.g. EMAIL_ADDRESS, EMPLOYEE_ID)"
        )
    return name


class EntityRule(BaseModel):
    """What to do with one entity type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    keep_last: int = Field(default=0, ge=0, le=16)

    _norm = field_validator("action", mode="before")(_action)


class _Recognizer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_type: str
    score: float = Field(default=0.6, gt=0.0, le=1.0)
    context: tuple[str, ...] = ()

    @field_validator("entity_type")
    @classmethod
    def _entity(cls, value: str) -> str:
        return _entity_name(value)

    def build(self, language: str = "en") -> EntityRecognizer:
        raise NotImplementedError


def _compile(pattern: str) -> None:
    try:
        import regex as engine  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        engine = re
    try:
        engine.compile(pattern)
    except Exception as error:
        raise ValueError(f"the regex {pattern!r} does not compile: {error}") from None


def _presidio() -> Any:
    try:
        import presidio_analyzer
    except ImportError as error:
        raise MissingDependencyError(
            "presidio-analyzer", extra="dlp", purpose="Custom DLP recognizers"
        ) from error
    return presidio_analyzer


_CONTEXT_WINDOW = 48  # characters on each side of a finding searched for context words
_CONTEXT_BOOST = 0.35  # what a context word adds to a finding's score (Presidio's default)


@functools.cache
def _context_class() -> Any:
    p = _presidio()
    enhanced = p.RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY

    class ContextPatternRecognizer(p.PatternRecognizer):  # type: ignore[misc,name-defined,unused-ignore]
        def enhance_using_context(
            self,
            text: str,
            raw_recognizer_results: list[Any],
            other_raw_recognizer_results: list[Any],
            nlp_artifacts: Any,
            context: list[str] | None = None,
        ) -> list[Any]:
            words = [w.lower() for w in [*(self.context or []), *(context or [])]]
            if not words:
                return raw_recognizer_results
            lowered = text.lower()
            for result in raw_recognizer_results:
                near = (
                    lowered[max(0, result.start - _CONTEXT_WINDOW) : result.start]
                    + " "
                    + lowered[result.end : result.end + _CONTEXT_WINDOW]
                )
                if any(re.search(rf"(?<!\w){re.escape(w)}(?:s|es|'s)?(?!\w)", near) for w in words):
                    result.score = min(1.0, result.score + _CONTEXT_BOOST)
                    result.recognition_metadata[enhanced] = True
            return raw_recognizer_results

    return ContextPatternRecognizer


def _context_recognizer(**kwargs: Any) -> EntityRecognizer:
    """A Presidio ``PatternRecognizer`` whose context words count within a window of
    characters (plural forms too): it needs no lemmas, so it works with any NLP pipeline."""
    return _context_class()(**kwargs)  # type: ignore[no-any-return,unused-ignore]


class DenyListRecognizer(_Recognizer):
    """Exact words or phrases (code names, customer names) that are always this entity."""

    kind: Literal["deny_list"] = "deny_list"
    values: tuple[str, ...] = Field(min_length=1)
    score: float = Field(default=1.0, gt=0.0, le=1.0)
    case_sensitive: bool = False

    def build(self, language: str = "en") -> EntityRecognizer:
        p = _presidio()
        import regex  # type: ignore[import-untyped,unused-ignore]  # presidio's engine

        flags = (regex.M | regex.S) if self.case_sensitive else (regex.I | regex.M | regex.S)
        recognizer: EntityRecognizer = p.PatternRecognizer(
            supported_entity=self.entity_type,
            name=f"deny_list:{self.entity_type}",
            supported_language=language,
            deny_list=list(self.values),
            deny_list_score=self.score,
            context=list(self.context) or None,
            global_regex_flags=flags,
        )
        return recognizer


class RegexRecognizer(_Recognizer):
    """Regular expressions, scored ``score``; ``context`` words nearby raise the score."""

    kind: Literal["regex"] = "regex"
    patterns: tuple[str, ...] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            _compile(pattern)
        return value

    def build(self, language: str = "en") -> EntityRecognizer:
        p = _presidio()
        patterns = [
            p.Pattern(f"{self.entity_type.lower()}_{i}", regex, self.score)
            for i, regex in enumerate(self.patterns)
        ]
        return _context_recognizer(
            supported_entity=self.entity_type,
            name=f"regex:{self.entity_type}",
            supported_language=language,
            patterns=patterns,
            context=list(self.context) or None,
        )


def format_regex(fmt: str) -> str:
    """An account-number format as a regex: ``#`` a digit, ``@`` a letter, ``*`` either,
    ``\\x`` the character x; anything else stands for itself."""
    out, chars = [], iter(fmt)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append({"#": r"\d", "@": "[A-Za-z]", "*": "[A-Za-z0-9]"}.get(ch) or re.escape(ch))
    body = "".join(out)
    return rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])"


class AccountNumberRecognizer(_Recognizer):
    """Account numbers of given shapes, e.g. ``AC-####-####`` or ``@@##########``."""

    kind: Literal["account_number"] = "account_number"
    formats: tuple[str, ...] = Field(min_length=1)

    @field_validator("formats")
    @classmethod
    def _valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for fmt in value:
            if not any(ch in "#@*" for ch in fmt):
                raise ValueError(
                    f"the account-number format {fmt!r} has no placeholder: use # for a digit, "
                    "@ for a letter, * for either"
                )
        return value

    def build(self, language: str = "en") -> EntityRecognizer:
        return RegexRecognizer(
            entity_type=self.entity_type,
            patterns=tuple(format_regex(fmt) for fmt in self.formats),
            score=self.score,
            context=self.context,
        ).build(language)


CustomRecognizer = Annotated[
    DenyListRecognizer | RegexRecognizer | AccountNumberRecognizer, Field(discriminator="kind")
]


class Policy(BaseModel):
    """A project's DLP policy (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    default_action: Action = "pseudonymise"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS)
    )
    entities: dict[str, EntityRule] = Field(default_factory=dict)
    recognizers: tuple[CustomRecognizer, ...] = ()
    allow_list: tuple[str, ...] = ()
    fail_open: bool = False
    timeout_s: float = Field(default=5.0, gt=0.0, le=300.0)
    vault_ttl_s: int = Field(default=3600, ge=1, le=30 * 86400)

    _norm = field_validator("default_action", mode="before")(_action)

    @field_validator("entities", mode="before")
    @classmethod
    def _rules(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        rules: dict[str, object] = {}
        for name, rule in value.items():
            key = _entity_name(str(name))
            if key in rules:
                raise ValueError(f"entity {key} appears twice in `entities`")
            rules[key] = {"action": rule} if isinstance(rule, str) else rule
        return rules

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: object) -> object:
        """The defaults, with the policy's own per-entity thresholds over them."""
        if not isinstance(value, Mapping):
            return value
        merged: dict[str, object] = dict(DEFAULT_THRESHOLDS)
        merged.update({_entity_name(str(name)): v for name, v in value.items()})
        return merged

    @model_validator(mode="after")
    def _custom_types_unique(self) -> Policy:
        seen: set[tuple[str, str]] = set()
        for rec in self.recognizers:
            key = (rec.kind, rec.entity_type)
            if key in seen:
                raise ValueError(
                    f"two {rec.kind} recognizers for {rec.entity_type}: merge them into one"
                )
            seen.add(key)
        return self

    # ------------------------------------------------------------ decisions

    def rule(self, entity_type: str) -> EntityRule:
        """The rule for ``entity_type``: its own, or the default action at the threshold."""
        return self.entities.get(entity_type) or EntityRule(action=self.default_action)

    def threshold_for(self, entity_type: str) -> float:
        """The score a finding of ``entity_type`` needs: its rule's threshold, else its
        entry in ``thresholds``, else ``threshold``."""
        rule = self.entities.get(entity_type)
        if rule and rule.threshold is not None:
            return rule.threshold
        return self.thresholds.get(entity_type, self.threshold)

    @property
    def min_threshold(self) -> float:
        """The lowest threshold any rule uses (what detection must report down to)."""
        values = [self.threshold_for(name) for name in {*self.entities, *self.thresholds}]
        return min([self.threshold, *values])

    def entities_to_detect(self, supported: frozenset[str]) -> list[str] | None:
        """The entity types worth detecting (None: all of them)."""
        custom = {rec.entity_type for rec in self.recognizers}
        if self.default_action != "allow":
            return None
        wanted = {name for name, rule in self.entities.items() if rule.action != "allow"}
        wanted |= {name for name in custom if self.rule(name).action != "allow"}
        return sorted(wanted & (supported | custom))

    @cached_property
    def allowed_values(self) -> frozenset[str]:
        return frozenset(value.strip().casefold() for value in self.allow_list)

    @property
    def recognizer_key(self) -> str:
        """Identifies the custom recognizers (detectors are shared between equal keys)."""
        return json.dumps([r.model_dump(mode="json") for r in self.recognizers], sort_keys=True)

    def build_recognizers(self, language: str = "en") -> list[EntityRecognizer]:
        return [rec.build(language) for rec in self.recognizers]

    # ------------------------------------------------------------ loading and saving

    @classmethod
    def parse(cls, data: object, *, source: str = "the DLP policy") -> Policy:
        """A policy from a mapping (or a JSON string), with errors that say where."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as error:
                raise ValidationError(f"{source} is not valid JSON: {error}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"{source} must be a mapping of settings, not {type(data).__name__}"
            )
        try:
            return cls.model_validate(dict(data))
        except PydanticError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}"
                for e in error.errors()
            )
            raise ValidationError(
                f"{source} is not a valid DLP policy: {problems} "
                "(see `genai dlp policy show --example`)"
            ) from None

    @classmethod
    def from_text(cls, text: str, *, source: str = "the DLP policy") -> Policy:
        """A policy from YAML or JSON text."""
        stripped = text.strip()
        if not stripped:
            return cls()
        if stripped[0] in "{[":
            return cls.parse(stripped, source=source)
        try:
            import yaml
        except ImportError as error:
            raise MissingDependencyError(
                "pyyaml", extra="serve", purpose="Reading a YAML DLP policy"
            ) from error
        try:
            data = yaml.safe_load(stripped)
        except yaml.YAMLError as error:
            raise ValidationError(f"{source} is neither YAML nor JSON: {error}") from None
        return cls.parse(data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """A policy from a YAML or JSON file."""
        file = Path(path).expanduser()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                f"cannot read the DLP policy file {str(file)!r}: {error.strerror}"
            ) from None
        return cls.from_text(text, source=f"the DLP policy file {str(file)!r}")

    def to_json(self) -> str:
        """Compact JSON (what ``genai dlp policy set`` stores in the project's options)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        if self.recognizers:  # their ``kind`` is a default, and must stay
            data["recognizers"] = [
                {"kind": r.kind, **r.model_dump(mode="json", exclude_defaults=True)}
                for r in self.recognizers
            ]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def policy_from_options(
    options: Mapping[str, Any], *, default: Policy | None = None, project: str = ""
) -> Policy | None:
    """The policy a project's options set (under ``dlp``), else ``default``; None when DLP
    is off for the project."""
    raw = options.get(OPTION_KEY)
    if raw is None or raw == "":
        policy = default
    elif raw is False:
        return None
    else:
        where = f"the DLP policy of project {project!r}" if project else "the DLP policy"
        policy = Policy.parse(raw, source=where)
    if policy is None or not policy.enabled:
        return None
    return policy
