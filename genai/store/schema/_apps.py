"""Hosted chat apps: a project's deployment published at a public link of the Hub."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from genai.store.schema._base import Base, _created, _project_fk

__all__ = ["PublishedApp"]


class PublishedApp(Base):
    """One deployment published as a public chat app at ``/hub/apps/{slug}``.

    The app calls the gateway with a key minted for it when it was published (role
    developer, named ``app-{slug}``), stored sealed (AES-GCM under the platform's secret
    key, bound to the project and the slug) and never shown to anyone. Browsers get app
    tokens instead, sealed with ``token_nonce``: a new nonce revokes every token handed out
    before it. Deleting the row (unpublishing) and revoking the key end the app at once.
    """

    __tablename__ = "published_apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = _project_fk()
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    deployment: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(16))
    sealed_key: Mapped[str] = mapped_column(Text)
    token_nonce: Mapped[str] = mapped_column(String(32))
    allowed_origins: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: any origin
    requests_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(120), default="")
