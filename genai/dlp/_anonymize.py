"""Applying a policy's actions to the findings in a text.

    redact        ``<EMAIL_ADDRESS>``
    mask          ``**** **** **** 1111`` (letters and digits masked, ``keep_last`` kept)
    hash          ``<EMAIL_ADDRESS:3f9a2b1c4d5e6f70>``: a keyed HMAC, salted per project
    pseudonymise  ``<EMAIL_ADDRESS_1>``: a typed token, the same for the same value in a
                  session, reversible through the vault
    block         the whole text is refused (:class:`~genai.errors.DlpBlocked`)
    allow         left as it is

Anonymising is two steps so that a vault is asked once per request: :func:`plan` decides
what happens to each finding, then :func:`render` writes the new texts, given the tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from genai.dlp._policy import Policy
from genai.dlp._restore import token_text
from genai.errors import DlpBlocked

__all__ = [
    "Planned",
    "blocked",
    "check_blocked",
    "mask",
    "plan",
    "pseudonym_items",
    "render",
]

Hasher = Callable[[str, str], str]  # (entity type, value) → hex digest


@dataclass(frozen=True)
class Planned:
    """What happens to one span of one text."""

    start: int
    end: int
    entity_type: str
    action: str
    score: float
    keep_last: int = 0
    mask_char: str = "*"


class _FindingLike(Protocol):  # what plan() reads of genai.dlp._detect.Finding
    @property
    def entity_type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def score(self) -> float: ...


def plan(text: str, findings: Sequence[_FindingLike], policy: Policy) -> list[Planned]:
    """The actions the policy takes on ``findings`` of ``text`` (allowed ones left out)."""
    out: list[Planned] = []
    last_end = -1
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if f.start < last_end or f.end <= f.start:
            continue  # overlaps one kept already
        if f.score < policy.threshold_for(f.entity_type):
            continue
        if policy.allowed_values and text[f.start : f.end].strip().casefold() in (
            policy.allowed_values
        ):
            continue
        rule = policy.rule(f.entity_type)
        if rule.action == "allow":
            continue
        out.append(
            Planned(
                f.start,
                f.end,
                f.entity_type,
                rule.action,
                f.score,
                keep_last=rule.keep_last,
                mask_char=rule.mask_char,
            )
        )
        last_end = f.end
    return out


def blocked(plans: Sequence[Sequence[Planned]]) -> Counter[str]:
    """How many findings of each entity type the policy blocks."""
    return Counter(p.entity_type for spans in plans for p in spans if p.action == "block")


def check_blocked(plans: Sequence[Sequence[Planned]], *, where: str = "the request") -> None:
    """Raise :class:`DlpBlocked` naming the blocked entity types (never their values)."""
    counts = blocked(plans)
    if counts:
        found = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
        raise DlpBlocked(
            f"{where} contains personal data that the DLP policy blocks: {found}. Remove it "
            "and send again, or ask a project owner to change the policy "
            "(`genai dlp policy set`)"
        )


def pseudonym_items(
    texts: Sequence[str], plans: Sequence[Sequence[Planned]]
) -> list[tuple[str, str]]:
    """The distinct ``(entity type, value)`` pairs to pseudonymise, in order of appearance."""
    seen: dict[tuple[str, str], None] = {}
    for text, spans in zip(texts, plans, strict=True):
        for p in spans:
            if p.action == "pseudonymise":
                seen.setdefault((p.entity_type, text[p.start : p.end]), None)
    return list(seen)


def mask(value: str, *, keep_last: int = 0, char: str = "*") -> str:
    """Letters and digits replaced by ``char``, but for the last ``keep_last`` of them;
    separators kept (``4111 1111 1111 1111`` → ``**** **** **** 1111``)."""
    alnum = sum(ch.isalnum() for ch in value)
    keep_from = alnum - keep_last if keep_last < alnum else alnum  # keep none of a short one
    out, seen = [], 0
    for ch in value:
        if ch.isalnum():
            out.append(ch if seen >= keep_from else char)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def render(
    text: str,
    spans: Sequence[Planned],
    *,
    tokens: Mapping[tuple[str, str], str] | None = None,
    hasher: Hasher | None = None,
    redact_only: bool = False,
) -> str:
    """``text`` with each planned span replaced. ``tokens`` maps ``(entity type, value)``
    to a pseudonym (e.g. ``EMAIL_ADDRESS_1``); without one a span is redacted, and so is
    every span when ``redact_only`` (a refused request's text, kept for the log)."""
    out, pos = [], 0
    for p in spans:
        value = text[p.start : p.end]
        out.append(text[pos : p.start])
        action = "redact" if redact_only else p.action
        if action == "mask":
            out.append(mask(value, keep_last=p.keep_last, char=p.mask_char))
        elif action == "hash" and hasher is not None:
            out.append(f"<{p.entity_type}:{hasher(p.entity_type, value)}>")
        elif action == "pseudonymise" and tokens and (p.entity_type, value) in tokens:
            out.append(token_text(tokens[(p.entity_type, value)]))
        else:
            out.append(f"<{p.entity_type}>")
        pos = p.end
    out.append(text[pos:])
    return "".join(out)
