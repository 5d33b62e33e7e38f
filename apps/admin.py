"""The admin API under ``/api`` (projects, members, keys, deployments, traffic, usage)."""

from __future__ import annotations

from fastapi import FastAPI

from genai.gateway import Gateway

__all__ = ["mount_admin"]


def mount_admin(app: FastAPI, gateway: Gateway) -> None:
    """Add the ``/api`` routes to the gateway's app."""
    return None
