"""Data loss prevention: detect personal data, apply a project's policy, and pseudonymise
reversibly for remote model calls.

- :class:`Policy` — per entity type: allow, redact, mask, hash, pseudonymise or block,
  with a score threshold (:data:`DEFAULT_THRESHOLDS` per entity type to start from);
  custom recognizers (deny lists, regexes with context words, account-number formats);
  fail closed unless ``fail_open``.
- :class:`Dlp` — the facade: ``anonymize`` (with a vault session), ``redact_texts``
  (RAG ingestion, fine-tuning data), ``scrub_for_log``.
- Vaults (:class:`SqlVault`, :class:`RedisVault`, :class:`MemoryVault`) — per session,
  token ↔ original value, encrypted, expiring.
- :class:`Restorer` and :class:`RestoringFilter` — tokens back to values, in whole texts,
  in streams split anywhere, and in tool-call arguments (JSON).
- :class:`Detector` — Presidio with offline recognizers and a bundled NER; an app keeps its
  loaded detectors in one :class:`Detectors` that its :class:`Dlp` objects share.
- :func:`render`, :func:`blocked`, :func:`check_blocked` — planned findings
  (:class:`Planned`) applied to a text, and the policy's blocks counted or refused.

Importing this package loads no detection engine; Presidio loads on first detection.
"""

from genai.dlp._anonymize import Planned, blocked, check_blocked, mask, render
from genai.dlp._detect import Detector, Finding
from genai.dlp._detectors import Detectors
from genai.dlp._keys import DlpKeys, load_keys
from genai.dlp._policy import (
    ACTIONS,
    DEFAULT_THRESHOLDS,
    POLICY_EXAMPLE,
    AccountNumberRecognizer,
    DenyListRecognizer,
    EntityRule,
    Policy,
    RegexRecognizer,
    policy_from_options,
)
from genai.dlp._projects import ProjectPolicies, effective_policy
from genai.dlp._restore import Restorer, RestoringFilter, restore_response, token_text
from genai.dlp._service import LOG_POLICY, WITHHELD, Anonymized, Dlp
from genai.dlp._vault import Assigned, MemoryVault, RedisVault, SqlVault, Vault

__all__ = [
    "ACTIONS",
    "DEFAULT_THRESHOLDS",
    "LOG_POLICY",
    "POLICY_EXAMPLE",
    "WITHHELD",
    "AccountNumberRecognizer",
    "Anonymized",
    "Assigned",
    "DenyListRecognizer",
    "Detector",
    "Detectors",
    "Dlp",
    "DlpKeys",
    "EntityRule",
    "Finding",
    "MemoryVault",
    "Planned",
    "Policy",
    "ProjectPolicies",
    "RedisVault",
    "RegexRecognizer",
    "Restorer",
    "RestoringFilter",
    "SqlVault",
    "Vault",
    "blocked",
    "check_blocked",
    "effective_policy",
    "load_keys",
    "mask",
    "policy_from_options",
    "render",
    "restore_response",
    "token_text",
]
