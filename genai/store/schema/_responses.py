"""The gateway's stored answers of OpenAI's Responses API (``POST /v1/responses``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genai.store.schema._base import Base, _created

__all__ = ["StoredResponse"]


class StoredResponse(Base):
    """One answer of ``POST /v1/responses`` kept for its project (unless the request said
    ``store: false``): the request's own input items and the whole response object, so that
    a later request goes on from it (``previous_response_id``: the chain of earlier
    responses' inputs and outputs comes first) and a client can read it back or delete it.

    Looked up by ``(project_id, response_id)`` only: another project's id is not found.
    Holds the conversation's text as the caller sent and received it.
    """

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("project_id", "response_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    response_id: Mapped[str] = mapped_column(String(64))
    previous_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deployment: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    input: Mapped[list[Any]] = mapped_column(JSON, default=list)  # this request's items
    response: Mapped[dict[str, Any]] = mapped_column(JSON)  # the response object, output included
