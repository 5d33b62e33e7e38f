"""One registered prompt version: its template, who made it and why, and its labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from genai.errors import ValidationError
from genai.registry import PromptVersionInfo
from prompts._template import ChatMessages, PromptTemplate

__all__ = ["PromptVersion"]


@dataclass(frozen=True)
class PromptVersion:
    """An immutable version of a project's prompt (``ref`` is ``name@version``).

    ``labels`` are those pointing at it when it was read; ``author`` and ``message`` are
    the pusher and the push message; ``content_hash`` is the registry's hash of the kind,
    template and variables (the same content always has the same hash).
    """

    name: str
    version: int
    template: PromptTemplate
    labels: tuple[str, ...]
    author: str
    message: str
    created_at: datetime
    content_hash: str
    created: bool = True  # False when a push found the same content already there

    @classmethod
    def from_info(cls, info: PromptVersionInfo, *, created: bool = True) -> PromptVersion:
        return cls(
            name=info.name,
            version=info.version,
            template=template_of(info),
            labels=tuple(info.aliases),
            author=info.created_by,
            message=info.description,
            created_at=info.created_at,
            content_hash=info.content_hash,
            created=created,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def kind(self) -> str:
        return self.template.kind

    def render(
        self, variables: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> ChatMessages | str:
        """Chat messages or text; errors name this version and each bad variable."""
        return self.template.render_as(variables, where=f"prompt {self.ref}", **kwargs)

    def to_langchain(self) -> Any:
        return self.template.to_langchain()

    def to_llama_index(self) -> Any:
        return self.template.to_llama_index()

    def to_dict(self) -> dict[str, Any]:
        """What ``--json`` prints: the version's facts and its template in the file format."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "kind": self.kind,
            "labels": list(self.labels),
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "content_hash": self.content_hash,
            "created": self.created,
            **self.template.to_dict(),
        }

    def _meta(self) -> list[tuple[str, str]]:
        return [
            ("labels", ", ".join(self.labels)),
            ("by", self.author),
            ("at", f"{self.created_at:%Y-%m-%d %H:%M}"),
            ("message", self.message),
            ("hash", self.content_hash[:12]),
        ]

    def _repr_html_(self) -> str:
        from prompts._display import html_of

        return html_of(self.template, title=self.ref, meta=self._meta())

    def __rich__(self) -> Any:
        from prompts._display import rich_of

        return rich_of(self.template, title=self.ref, meta=self._meta())

    def __repr__(self) -> str:
        labels = f" [{', '.join(self.labels)}]" if self.labels else ""
        return f"<PromptVersion {self.ref}{labels} {self.kind} by {self.author}>"


def template_of(info: PromptVersionInfo) -> PromptTemplate:
    """The template a registry entry holds (variables inferred when it stored none)."""
    body = info.template
    source = body.get("template")
    variables = body.get("variables") or None
    try:
        if info.template_kind == "text":
            return PromptTemplate(text=source, variables=variables)
        return PromptTemplate(messages=source, variables=variables)
    except ValidationError as error:
        raise ValidationError(
            f"prompt {info.name}@{info.version} in the registry is not a valid template "
            f"({error.message}): push a corrected version",
            field=error.field,
        ) from None
