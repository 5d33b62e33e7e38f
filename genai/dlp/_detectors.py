"""Loaded detectors, kept by whoever owns them (an app, a knowledge-base service).

Building a :class:`~genai.dlp.Detector` takes seconds the first time in a process (Presidio,
spaCy and the NER model load) and holds tens of megabytes, so the :class:`~genai.dlp.Dlp`
objects of one app share one :class:`Detectors`: one detector per NER model, language and
set of custom recognizers, the least recently used dropped past ``max_size``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genai.dlp._detect import Detector

__all__ = ["DetectorKey", "Detectors"]

#: NER model (None: the bundled one), language, and the policy's recognizer key.
DetectorKey = tuple[str | None, str, str]


class Detectors:
    """Detectors by key, each built once: a second thread that wants one being built waits
    for it, and threads that want other ones do not wait."""

    def __init__(self, *, max_size: int = 32) -> None:
        self.max_size = max_size
        self._found: OrderedDict[DetectorKey, Detector] = OrderedDict()
        self._building: dict[DetectorKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._found)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._found

    def get(self, key: DetectorKey, build: Callable[[], Detector]) -> Detector:
        """The detector of ``key``, built by ``build`` (once) when there is none."""
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one thread loads it; others wanting the same one wait, no one else
            with self._lock:
                found = self._found.get(key)
            if found is None:
                found = build()
                with self._lock:
                    self._found[key] = found
                    self._building.pop(key, None)
                    while len(self._found) > self.max_size:
                        self._found.popitem(last=False)
        return found

    def clear(self) -> None:
        """Drop every detector (the next use builds it again)."""
        with self._lock:
            self._found.clear()
