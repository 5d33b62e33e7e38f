"""The ``genai`` command line."""

from apps.cli._app import app, main

__all__ = ["app", "main"]
