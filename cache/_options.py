"""Whether the cache is on for a deployment of a project, and how: the project's ``cache``
option. The cache is off unless a project turns it on — for all its deployments, or for
some of them::

    {"cache": {"enabled": true, "threshold": 0.85,
               "deployments": {"support": {"enabled": true, "ttl_s": 3600},
                               "drafts": {"enabled": false}}}}

``enabled`` at the top turns it on for every deployment of the project; an entry under
``deployments`` with ``enabled`` turns it on (or off) for that deployment whatever the
project says, and its settings override the project's there. The settings: ``threshold``
(cosine similarity, in (0, 1]), ``ttl_s`` (seconds an entry lives) and
``max_temperature`` (a request that asks for a higher temperature is not cached; 0 by
default), ``verifier`` (whether the trained pair verifier judges semantic hits, where the
cache has one; off by default: on this CPU it adds about 10 ms to a lookup, up to 100 at the
99th percentile, for little precision at its own line) and ``max_error`` (the bound on the
estimated probability that a semantic hit is wrong, in (0, 1), e.g. 0.02: see
``cache/_bound.py``; it turns the verifier on) and ``recheck_rate`` (the share of the
semantic hits the verifier judged that are asked of the model again after the answer is
sent, in [0, 1], default 0: each is a real model call, billed and counted against the
project's quotas like any other; the fresh answer labels the hit right or wrong for the
bound, see ``apps/_cache.py``). ``true`` stands for ``{"enabled": true}``;
``false``, or no option, for off. The option is stored as JSON text (``genai cache
enable`` writes it, see ``cache/_projects.py``); a dict is read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from genai.errors import ValidationError

__all__ = ["OPTION_KEY", "CacheLevel", "CacheOptions", "CacheSettings"]

OPTION_KEY = "cache"


@dataclass(frozen=True)
class CacheSettings:
    """How the cache works for one deployment it is on for."""

    threshold: float | None = None  # None: the cache's own
    ttl_s: float | None = None  # None: the cache's own
    max_temperature: float = 0.0
    verifier: bool = False  # the pair verifier judges hits (where the cache has one)
    max_error: float | None = None  # None: no bound (the verifier's own 0.5 line)
    recheck_rate: float = 0.0  # share of judged semantic hits asked again (off the hot path)


@dataclass(frozen=True)
class CacheLevel:
    """The switch and settings of the project, or of one deployment (None: not set here)."""

    enabled: bool | None = None
    threshold: float | None = None
    ttl_s: float | None = None
    max_temperature: float | None = None
    verifier: bool | None = None
    max_error: float | None = None
    recheck_rate: float | None = None

    def __post_init__(self) -> None:
        if self.enabled is not None and not isinstance(self.enabled, bool):
            raise _invalid("enabled", self.enabled, "true or false")
        if self.threshold is not None and not 0 < _number("threshold", self.threshold) <= 1:
            raise _invalid("threshold", self.threshold, "a cosine similarity in (0, 1]")
        if self.ttl_s is not None and not _number("ttl_s", self.ttl_s) > 0:
            raise _invalid("ttl_s", self.ttl_s, "seconds, above 0")
        if (
            self.max_temperature is not None
            and _number("max_temperature", self.max_temperature) < 0
        ):
            raise _invalid("max_temperature", self.max_temperature, "0 or above")
        if self.verifier is not None and not isinstance(self.verifier, bool):
            raise _invalid("verifier", self.verifier, "true or false")
        if self.max_error is not None and not 0 < _number("max_error", self.max_error) < 1:
            raise _invalid("max_error", self.max_error, "a probability in (0, 1), e.g. 0.02")
        if self.verifier is False and self.max_error is not None:
            raise _invalid("max_error", self.max_error, "unset while the verifier is off")
        if (
            self.recheck_rate is not None
            and not 0 <= _number("recheck_rate", self.recheck_rate) <= 1
        ):
            raise _invalid("recheck_rate", self.recheck_rate, "a share in [0, 1], e.g. 0.01")
        if self.verifier is False and self.recheck_rate:
            raise _invalid("recheck_rate", self.recheck_rate, "0 while the verifier is off")

    def merged(self, **changes: Any) -> CacheLevel:
        """This level with the ``changes`` that are not None."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class CacheOptions:
    """A project's ``cache`` option, parsed."""

    project: CacheLevel = CacheLevel()
    deployments: Mapping[str, CacheLevel] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, *, project: str = "") -> CacheOptions:
        """The options from a project's stored ``cache`` option (JSON text, a dict, a bool
        or None); a ValidationError names what is wrong."""
        if raw is None or raw is False or raw == "":
            return cls()
        if raw is True:
            return cls(CacheLevel(enabled=True))
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise _invalid("", raw, "JSON of an object", project) from None
            return cls.parse(raw, project=project)
        if not isinstance(raw, Mapping):
            raise _invalid("", raw, 'true, false or an object such as {"enabled": true}', project)
        top = dict(raw)
        given = top.pop("deployments", None) or {}
        if not isinstance(given, Mapping):
            raise _invalid("deployments", given, "an object of deployment names", project)
        try:
            return cls(_level(top), {str(name): _level(v) for name, v in given.items()})
        except ValidationError as error:
            where = f"project {project!r}: " if project else ""
            raise ValidationError(f"{where}{error.message}", field=OPTION_KEY) from None

    def settings(self, deployment: str) -> CacheSettings | None:
        """How the cache works for ``deployment``; None when it is off there."""
        own = self.deployments.get(deployment, CacheLevel())
        on = own.enabled if own.enabled is not None else self.project.enabled
        if not on:
            return None

        def pick(name: str) -> Any:
            value = getattr(own, name)
            return value if value is not None else getattr(self.project, name)

        temperature = pick("max_temperature")
        verifier, max_error = pick("verifier"), pick("max_error")
        on = verifier is True or (verifier is None and max_error is not None)
        recheck = pick("recheck_rate")
        return CacheSettings(
            threshold=pick("threshold"),
            ttl_s=pick("ttl_s"),
            max_temperature=float(temperature) if temperature is not None else 0.0,
            verifier=on,
            max_error=max_error if on else None,
            recheck_rate=float(recheck) if on and recheck is not None else 0.0,
        )

    def enabled_for(self) -> tuple[bool, list[str], list[str]]:
        """Whether it is on for the whole project, the deployments it is on for on their
        own, and those it is off for on their own."""
        on = [n for n, level in sorted(self.deployments.items()) if level.enabled is True]
        off = [n for n, level in sorted(self.deployments.items()) if level.enabled is False]
        return bool(self.project.enabled), on, off

    def to_json(self) -> str:
        data = self.project.to_dict()
        deployments = {n: level.to_dict() for n, level in sorted(self.deployments.items())}
        if deployments:
            data["deployments"] = deployments
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


_FIELDS = frozenset(
    (
        "enabled",
        "threshold",
        "ttl_s",
        "max_temperature",
        "verifier",
        "max_error",
        "recheck_rate",
    )
)


def _level(raw: Any) -> CacheLevel:
    if not isinstance(raw, Mapping):
        raise _invalid("", raw, 'an object such as {"enabled": true}')
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown cache setting {unknown[0]!r}: use {', '.join(sorted(_FIELDS))}",
            field=OPTION_KEY,
        )
    return CacheLevel(**raw)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(name, value, "a number")
    return float(value)


def _invalid(name: str, value: Any, wanted: str, project: str = "") -> ValidationError:
    what = f"cache.{name}" if name else "the cache option"
    where = f" of project {project!r}" if project else ""
    return ValidationError(
        f"{what}{where} is {value!r}: it must be {wanted} (`genai cache enable` writes it)",
        field=OPTION_KEY,
    )
