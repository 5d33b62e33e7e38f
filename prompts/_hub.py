"""``PromptHub``: one project's prompts from Python (notebooks, apps, CI), over the registry.

Versions, labels and their audit trail live in the registry (:class:`genai.registry.Prompts`
and :class:`genai.registry.Aliases`); this adds templates, files, diffs, rollback and a
read cache. Every call authorizes the client's principal in the registry: a viewer reads and
renders, a developer pushes and moves ordinary labels, only a maintainer or owner moves a
protected label (``GENAI_PROTECTED_ALIASES``, by default ``production``).

Reads go through a TTL cache (``ttl_s``): a label moved elsewhere is seen within that time,
and when the database cannot be reached the last version read stands in (see
:mod:`prompts._cache`). Within the TTL a cached read is not authorized again; a revoked
membership takes effect at the next read from the store.
"""

from __future__ import annotations

import builtins
import difflib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import genai
from genai.errors import ConflictError, NotFoundError
from genai.registry import AliasChange, Ref
from genai.validation import check_resource_name
from prompts._cache import LastGoodCache
from prompts._files import load
from prompts._template import ChatMessages, PromptTemplate
from prompts._version import PromptVersion

__all__ = ["PromptHub", "parse_ref"]


def parse_ref(ref: str) -> Ref:
    """``qa``, ``qa@3``, ``qa@production`` (or with the ``prompt:`` prefix)."""
    return Ref.parse(ref, kind="prompt")


class PromptHub:
    """The prompts of ``project`` as ``client``'s principal sees them.

    >>> hub = PromptHub(client, "support-bot")                        # doctest: +SKIP
    >>> hub.push("qa", "qa.yaml", message="first cut", label="staging")  # doctest: +SKIP
    >>> hub.get("qa@staging").render(question="Where is my invoice?")   # doctest: +SKIP
    """

    def __init__(
        self,
        client: genai.Client,
        project: str,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.project = project
        self._cache: LastGoodCache[tuple[str, str], PromptVersion] = LastGoodCache(
            ttl_s, clock=clock
        )
        self._owns_client = False

    @classmethod
    def connect(
        cls,
        project: str,
        *,
        settings: genai.Settings | None = None,
        user: str | None = None,
        api_key: str | None = None,
        ttl_s: float = 60.0,
    ) -> PromptHub:
        """A hub on its own client (:func:`genai.connect`), closed with the hub."""
        hub = cls(genai.connect(settings, user=user, api_key=api_key), project, ttl_s=ttl_s)
        hub._owns_client = True
        return hub

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> PromptHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PromptHub project={self.project!r} ttl_s={self._cache.ttl_s}>"

    # ------------------------------------------------------------ writing

    def push(
        self,
        name: str,
        template: PromptTemplate | str | Path,
        *,
        message: str = "",
        label: str | None = None,
    ) -> PromptVersion:
        """Register ``template`` (or the prompt file at that path) as the next version of
        ``name``; the same content as the newest version is that version (``created`` is
        False). With ``label``, point the label at it too; when moving the label is refused
        (``production`` by a developer) the version stays registered, unlabelled, for a
        maintainer to label."""
        check_resource_name(name, kind="prompt name")
        if not isinstance(template, PromptTemplate):
            template = load(template)
        prompts = self.client.registry.prompts
        try:
            before: int | None = prompts.get(self.project, f"prompt:{name}").version
        except NotFoundError:
            before = None
        body, variables = template.registry_payload()
        info = prompts.register(
            self.project, name, template=body, variables=variables, message=message
        )
        if label is not None:
            self.client.registry.aliases.set(self.project, f"prompt:{name}@{info.version}", label)
        self._cache.expire(lambda key: key[0] == name)
        fresh = prompts.get(self.project, f"prompt:{name}@{info.version}")
        return PromptVersion.from_info(fresh, created=before is None or info.version > before)

    def label(self, ref: str, label: str) -> AliasChange:
        """Point ``label`` at the version ``ref`` names (``qa@3``, ``qa@staging``, ``qa``);
        the move is kept in the label's history and the audit log."""
        target = parse_ref(ref)
        change = self.client.registry.aliases.set(self.project, str(target), label)
        self._cache.expire(lambda key: key[0] == target.name)
        return change

    def unlabel(self, name: str, label: str) -> AliasChange:
        """Remove ``label`` from prompt ``name`` (recorded like a move)."""
        change = self.client.registry.aliases.delete(self.project, f"prompt:{name}", label)
        self._cache.expire(lambda key: key[0] == name)
        return change

    def rollback(self, name: str, label: str) -> AliasChange:
        """Move ``label`` back to the version it pointed at before its current one.

        Going back pops the label's history: after 1 → 2 → 3, rollbacks go to 2, then to 1,
        then refuse (there is nothing before 1). A label moved back to a version it held
        before counts as a rollback to it.
        """
        events = self.label_history(name, label=label)
        held: list[int] = []
        for event in events:
            if event.to_version is None:  # removed: a later label starts a new history
                held = []
            elif event.to_version in held:
                del held[held.index(event.to_version) + 1 :]
            else:
                held.append(event.to_version)
        if not held:
            raise NotFoundError(f"prompt {name!r} has no label {label!r}")
        if len(held) < 2:
            raise ConflictError(
                f"label {label!r} of prompt {name!r} has no earlier version to go back to "
                f"(it points at {held[-1]}, its first): point it elsewhere with "
                f"`genai prompt label {name}@VERSION {label}`"
            )
        return self.label(f"{name}@{held[-2]}", label)

    # ------------------------------------------------------------ reading

    def get(self, ref: str) -> PromptVersion:
        """``qa`` (newest), ``qa@3`` or ``qa@production``, from the cache while fresh."""
        target = parse_ref(ref)
        key = (target.name, target.selector or "latest")
        return self._cache.get(
            key,
            lambda: PromptVersion.from_info(
                self.client.registry.prompts.get(self.project, str(target))
            ),
            what=f"prompt {target.name}@{key[1]}",
        )

    def render(
        self, ref: str, variables: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> ChatMessages | str:
        """``get(ref).render(...)``: chat messages or text."""
        return self.get(ref).render(dict(variables or {}), **kwargs)

    def list(self) -> builtins.list[PromptVersion]:
        """The newest version of each prompt, by name."""
        newest: dict[str, PromptVersion] = {}
        for info in self.client.registry.prompts.list(self.project):
            if info.name not in newest:  # newest first within each name
                newest[info.name] = PromptVersion.from_info(info)
        return [newest[name] for name in sorted(newest)]

    def history(self, name: str) -> builtins.list[PromptVersion]:
        """Every version of ``name``, newest first."""
        parse_ref(name)
        infos = self.client.registry.prompts.list(self.project, name=name)
        if not infos:
            raise NotFoundError(f"prompt {name!r} not found in project {self.project!r}")
        return [PromptVersion.from_info(info) for info in infos]

    def label_history(self, name: str, *, label: str | None = None) -> builtins.list[AliasChange]:
        """Every move of ``name``'s labels (or of one label), oldest first."""
        return self.client.registry.aliases.history(self.project, f"prompt:{name}", alias=label)

    def diff(self, a: str, b: str, *, context: int = 3) -> str:
        """A unified diff of two versions' sources (YAML, as pushed); empty when equal."""
        old, new = self._read(a), self._read(b)
        return "".join(
            difflib.unified_diff(
                old.template.to_yaml().splitlines(keepends=True),
                new.template.to_yaml().splitlines(keepends=True),
                fromfile=old.ref,
                tofile=new.ref,
                n=context,
            )
        )

    @property
    def fallbacks(self) -> int:
        """How many reads were answered from the cache because the store was unreachable."""
        return self._cache.fallbacks

    def invalidate(self, name: str | None = None) -> None:
        """Make cached reads (of ``name``, or all) stale: the next read goes to the store."""
        self._cache.expire(None if name is None else (lambda key: key[0] == name))

    def _read(self, ref: str) -> PromptVersion:
        """Uncached: a diff compares what the registry holds now."""
        return PromptVersion.from_info(
            self.client.registry.prompts.get(self.project, str(parse_ref(ref)))
        )
