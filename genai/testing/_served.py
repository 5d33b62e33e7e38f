"""What the fake servers share: serving their ASGI ``app`` on a free 127.0.0.1 port for
the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from typing import Any, Self

__all__ = ["Served"]


class Served:
    """``with fake:`` serves ``fake.app`` (uvicorn in a thread) until the block ends;
    ``url`` is its base URL meanwhile. A subclass sets ``app`` in its ``__init__``."""

    app: Any
    url: str = ""
    _serving: contextlib.ExitStack | None = None

    def __enter__(self) -> Self:
        from genai.testing._openai_server import running_server

        if self._serving is not None:
            raise RuntimeError(f"this {type(self).__name__} is served already")
        stack = contextlib.ExitStack()
        self.url = stack.enter_context(running_server(self.app))
        self._serving = stack
        self._started()
        return self

    def __exit__(self, *exc_info: object) -> None:
        stack, self._serving = self._serving, None
        if stack is not None:
            stack.close()

    def _started(self) -> None:
        """Called each time the fake starts being served."""
