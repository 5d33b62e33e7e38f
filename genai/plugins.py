"""Plug-ins: one small registry per family of backends, filled by name or by entry point.

    >>> from genai.plugins import Registry
    >>> shouters: Registry[str] = Registry("shouter")
    >>> shouters.register("loud", lambda *, text: text.upper())
    >>> shouters.create("loud", text="hi")
    'HI'
    >>> shouters.names()
    ['loud']

A factory is a callable (a class, a function) or a ``"module:attribute"`` string, imported
on first use so that registering costs nothing. :meth:`Registry.create` calls it with the
options given; an unknown name raises :class:`~genai.errors.UnknownBackendError` listing
the known ones.

Other packages add to a family without changing this one: an entry point in the group of
the family, in their own ``pyproject.toml``::

    [project.entry-points."genai.llm_backends"]
    my-llm = "my_package.backend:MyBackend"

The platform's families (later ones, such as metrics, agent tools and trainers, are one
more registry each):

=================  ==============================  =======================  =====================
family             registry                        entry-point group        factory called with
=================  ==============================  =======================  =====================
LLM backends       ``genai.models.LLM_BACKENDS``   ``genai.llm_backends``   the backend's options
embedders          ``genai.models.EMBEDDERS``      ``genai.embedders``      ``model=`` and options
vector stores      ``genai.vectors.VECTOR_STORES`` ``genai.vector_stores``  ``settings=``
document loaders   ``rag.LOADERS``                 ``genai.loaders``        nothing
=================  ==============================  =======================  =====================

Entry points are read once, on the first lookup (:meth:`Registry.discover` reads them
again). A name registered in code wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from genai.errors import ConfigError, UnknownBackendError, ValidationError

__all__ = ["Registry"]

T = TypeVar("T")

# A registered factory: the callable itself, "module:attribute", or an installed entry point.
_Entry = Callable[..., Any] | str | EntryPoint


class Registry(Generic[T]):
    """Factories of one family of backends, by name.

    ``family`` names the family in errors ("LLM", "vector store"); ``group`` is the
    entry-point group whose entries join it (None: none); ``builtins`` are the factories
    it starts with.
    """

    def __init__(
        self,
        family: str,
        *,
        group: str | None = None,
        builtins: Mapping[str, Callable[..., T] | str] | None = None,
    ) -> None:
        self.family = family
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._discovered = group is None
        self._lock = threading.Lock()
        for name, factory in (builtins or {}).items():
            self.register(name, factory)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, group={self.group!r})"

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        """Make ``factory`` available as ``name`` (replacing any factory of that name)."""
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"a {self.family} needs a name, not {name!r}", field="name")
        if isinstance(factory, str):
            _split(factory)  # refuse a malformed reference now, not at first use
        elif not callable(factory):
            raise ValidationError(
                f"a {self.family} factory is a callable or 'module:attribute', not "
                f"{type(factory).__name__}",
                field="factory",
            )
        with self._lock:
            self._entries[name] = factory

    def unregister(self, name: str) -> None:
        """Forget ``name`` (an entry point of that name comes back on :meth:`discover`)."""
        with self._lock:
            self._entries.pop(name, None)

    def names(self) -> list[str]:
        """Every name known, registered or installed, sorted."""
        self._ensure_discovered()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        return name in self._entries

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``, imported if it was given by reference."""
        self._ensure_discovered()
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownBackendError(self.family, name, list(self._entries))
        if not isinstance(entry, str | EntryPoint):
            return entry
        loaded = self._load(name, entry)
        with self._lock:
            if self._entries.get(name) is entry:  # unless it was replaced meanwhile
                self._entries[name] = loaded
        return loaded

    def create(self, name: str, /, **options: Any) -> T:
        """A new backend: the factory of ``name`` called with ``options``."""
        built: T = self.factory(name)(**options)
        return built

    def discover(self) -> None:
        """Read the entry points of the family's group (again): installed names that are
        not registered in code join the registry."""
        if self.group is None:
            return
        found = _installed(self.group)
        with self._lock:
            for entry in found:
                self._entries.setdefault(entry.name, entry)
            self._discovered = True

    def _ensure_discovered(self) -> None:
        if not self._discovered:
            self.discover()

    def _load(self, name: str, entry: str | EntryPoint) -> Callable[..., T]:
        where = entry if isinstance(entry, str) else f"entry point {entry.value!r}"
        try:
            if isinstance(entry, EntryPoint):
                loaded = entry.load()
            else:
                module, attribute = _split(entry)
                loaded = importlib.import_module(module)
                for part in attribute.split("."):
                    loaded = getattr(loaded, part)
        except AttributeError as error:
            raise ConfigError(
                f"{self.family} {name!r} ({where}) names nothing that exists: {error}"
            ) from error
        if not callable(loaded):
            raise ConfigError(f"{self.family} {name!r} ({where}) is not callable")
        factory: Callable[..., T] = loaded
        return factory


def _split(reference: str) -> tuple[str, str]:
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValidationError(
            f"a factory reference is 'module:attribute' (e.g. 'my_package.backend:MyBackend'), "
            f"not {reference!r}",
            field="factory",
        )
    return module.strip(), attribute.strip()


def _installed(group: str) -> Iterable[EntryPoint]:
    return entry_points(group=group)
