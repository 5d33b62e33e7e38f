"""The DLP facade: detect, anonymise under a policy, keep pseudonyms, scrub log lines.

The gateway's stages (``apps/_dlp.py``), RAG ingestion and fine-tuning data preparation
all go through one :class:`Dlp`::

    dlp = Dlp.from_settings(settings, store, detectors=detectors)  # the app's Detectors
    clean = dlp.redact_texts(documents, policy)              # before chunking or training
    result = dlp.anonymize(messages, policy, project_id=7, session=key)   # reversible
    dlp.restorer(result.mapping).text(answer)                 # back to the originals
    log.info("prompt: %s", dlp.scrub_for_log(prompt))         # never raw PII in a log
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genai.dlp._anonymize import (
    Planned,
    check_blocked,
    plan,
    pseudonym_items,
    render,
)
from genai.dlp._detectors import Detectors
from genai.dlp._keys import DlpKeys, load_keys
from genai.dlp._policy import DEFAULT_THRESHOLDS, Policy
from genai.dlp._restore import Restorer
from genai.dlp._vault import MemoryVault, RedisVault, SqlVault, Vault

if TYPE_CHECKING:
    from genai.dlp._detect import Detector, Finding
    from genai.settings import Settings
    from genai.store import Store

__all__ = ["LOG_POLICY", "WITHHELD", "Anonymized", "Dlp"]

log = logging.getLogger("genai.dlp")

#: What a log line says instead of a text that could not be checked.
WITHHELD = "[withheld: DLP could not check this text]"

#: Log lines: every entity found is redacted, whatever the project's policy says (down to
#: the weakest pattern findings; the NER's weak spans, ordinary words, stay).
LOG_POLICY = Policy(
    default_action="redact",
    threshold=0.35,
    thresholds=dict.fromkeys(DEFAULT_THRESHOLDS, 0.35),
)


class _WithholdText(logging.Filter):
    """Presidio logs the texts it analyses (context words at DEBUG, a failed IBAN check at
    ERROR...): drop its debug and info records, and keep only the level and place of the
    others, so that no log line carries personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        record.msg = (
            f"{record.name} {record.levelname.lower()} at {record.module}:{record.lineno} "
            "(message withheld by genai.dlp: it may hold personal data)"
        )
        record.args = ()
        record.exc_info = record.exc_text = None
        return True


_QUIET = _WithholdText()


def quiet_detection_logs() -> None:
    """Install the filter on Presidio's loggers (idempotent)."""
    for name in ("presidio-analyzer", "presidio-anonymizer", "decision_process"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


@dataclass
class Anonymized:
    """Texts with personal data handled by a policy, and what restores them."""

    texts: list[str]
    plans: list[list[Planned]]
    mapping: dict[str, str] = field(default_factory=dict, repr=False)  # token → original

    @property
    def counts(self) -> dict[str, int]:
        """How many findings of each entity type were acted on (no values)."""
        counts: dict[str, int] = {}
        for spans in self.plans:
            for p in spans:
                counts[p.entity_type] = counts.get(p.entity_type, 0) + 1
        return counts

    @property
    def restorer(self) -> Restorer:
        return Restorer(self.mapping)

    @property
    def pseudonymised(self) -> bool:
        return bool(self.mapping)


class Dlp:
    """Detection (one detector per set of custom recognizers), keys and a vault.

    Detectors load in seconds: they are kept in ``detectors``, which the Dlp objects of an
    app share (one is made for this Dlp alone when none is given).
    """

    def __init__(
        self,
        *,
        keys: DlpKeys,
        vault: Vault | None = None,
        ner: str | None = None,
        language: str = "en",
        detectors: Detectors | None = None,
    ) -> None:
        self.keys = keys
        self.vault: Vault = vault if vault is not None else MemoryVault()
        self.ner = ner
        self.language = language
        self.detectors = detectors if detectors is not None else Detectors()

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store | None = None, *, detectors: Detectors | None = None
    ) -> Dlp:
        """The vault in Redis when ``GENAI_REDIS_URL`` is set, else in the metadata store
        (``store``), else in this process; detectors kept in ``detectors``."""
        keys = load_keys(settings)
        vault: Vault
        if settings.redis_url:
            vault = RedisVault(settings.redis_url, keys, prefix=settings.redis_prefix)
        elif store is not None:
            vault = SqlVault(store, keys)
        else:
            vault = MemoryVault()
        return cls(keys=keys, vault=vault, ner=settings.dlp_ner, detectors=detectors)

    # ------------------------------------------------------------ detection

    def detector(self, policy: Policy | None = None) -> Detector:
        """The detector with ``policy``'s custom recognizers (built once, then shared)."""

        def build() -> Detector:
            from genai.dlp._detect import Detector

            quiet_detection_logs()
            extra = policy.build_recognizers(self.language) if policy else []
            found = Detector(ner=self.ner, extra_recognizers=extra, language=self.language)
            found.warm()
            return found

        return self.detectors.get(self._detector_key(policy), build)

    def warm(self, policy: Policy | None = None) -> None:
        self.detector(policy)

    def loaded(self, policy: Policy | None = None) -> bool:
        """Whether the detector for ``policy`` is built (``detector`` returns it at once)."""
        return self._detector_key(policy) in self.detectors

    def _detector_key(self, policy: Policy | None) -> tuple[str | None, str, str]:
        return (self.ner, self.language, policy.recognizer_key if policy is not None else "[]")

    def detect(self, texts: Sequence[str], policy: Policy) -> list[list[Finding]]:
        """Findings in each text at or above the policy's lowest threshold."""
        detector = self.detector(policy)
        entities = policy.entities_to_detect(detector.supported_entities)
        if entities == []:
            return [[] for _ in texts]
        return detector.analyze_batch(
            list(texts), entities=entities, threshold=policy.min_threshold
        )

    def plan(self, texts: Sequence[str], policy: Policy) -> list[list[Planned]]:
        findings = self.detect(texts, policy)
        return [plan(text, found, policy) for text, found in zip(texts, findings, strict=True)]

    # ------------------------------------------------------------ anonymising

    def hasher(self, project_id: int) -> Any:
        def digest(entity_type: str, value: str) -> str:
            return self.keys.mac("hash", project_id, entity_type, value.strip(), size=16)

        return digest

    def session_key(self, project_id: int, session_id: str, *, principal: str = "") -> str:
        """The vault's name for a caller's session: a keyed hash of project, principal and
        session id (the id itself is never stored)."""
        return self.keys.mac("session", project_id, principal, session_id)

    def anonymize(
        self,
        texts: Sequence[str],
        policy: Policy,
        *,
        project_id: int = 0,
        session: str | None = None,
        vault: Vault | None = None,
        plans: Sequence[Sequence[Planned]] | None = None,
        where: str = "the request",
    ) -> Anonymized:
        """``texts`` under ``policy``. Pseudonyms come from ``session`` of the vault (a
        fresh in-memory session when None); :class:`~genai.errors.DlpBlocked` when the
        policy blocks a finding."""
        texts = list(texts)
        planned = [list(p) for p in plans] if plans is not None else self.plan(texts, policy)
        check_blocked(planned, where=where)
        items = pseudonym_items(texts, planned)
        tokens: dict[tuple[str, str], str] = {}
        mapping: dict[str, str] = {}
        if items or session is not None:  # a session's earlier tokens restore too
            store: Vault
            if vault is not None:
                store = vault
            else:
                store = self.vault if session is not None else MemoryVault()
            assigned = store.assign(
                project_id, session or "request", items, ttl_s=policy.vault_ttl_s
            )
            tokens = dict(zip(items, assigned.tokens, strict=True))
            mapping = assigned.mapping
        hasher = self.hasher(project_id)
        out = [
            render(text, spans, tokens=tokens, hasher=hasher)
            for text, spans in zip(texts, planned, strict=True)
        ]
        return Anonymized(out, planned, mapping)

    def redact_texts(
        self, texts: Sequence[str], policy: Policy | None = None, *, project_id: int = 0
    ) -> list[str]:
        """Texts for RAG ingestion or fine-tuning data: the policy applied (default: every
        entity pseudonymised), with pseudonyms consistent across ``texts`` but kept in no
        vault, so nothing can restore them. Blocked entities raise
        :class:`~genai.errors.DlpBlocked` naming the text."""
        policy = policy or Policy()
        texts = list(texts)
        planned = self.plan(texts, policy)
        for index, spans in enumerate(planned):
            check_blocked([spans], where=f"text {index}")
        return self.anonymize(texts, policy, project_id=project_id, plans=planned).texts

    def restorer(self, mapping: dict[str, str]) -> Restorer:
        return Restorer(mapping)

    def restore(self, text: str, *, project_id: int, session: str) -> str:
        """``text`` with the tokens of a vault session replaced by their originals."""
        return Restorer(self.vault.mapping(project_id, session)).text(text)

    # ------------------------------------------------------------ logs

    def scrub_for_log(self, text: str, policy: Policy | None = None) -> str:
        """``text`` fit for a log line: every entity found redacted (``<EMAIL_ADDRESS>``),
        with ``policy``'s custom recognizers too; :data:`WITHHELD` when detection fails."""
        if not text:
            return text
        rules = LOG_POLICY
        if policy is not None and policy.recognizers:
            rules = LOG_POLICY.model_copy(update={"recognizers": policy.recognizers})
        try:
            spans = self.plan([text], rules)[0]
        except Exception as error:  # a log line must never carry what was not checked
            log.warning("DLP could not check a log line (%s): withheld", type(error).__name__)
            return WITHHELD
        return render(text, spans, redact_only=True)
