"""Prompt templates: chat (role messages) or text, Jinja2 in a sandbox, declared variables.

A template checks itself when it is built (the Jinja parses, every variable it uses is
declared, every declared one is used, defaults have their declared type), so a template
that made it into the registry renders for any call that passes its variables. Rendering
refuses missing, unexpected and wrongly-typed variables, naming each of them: a prompt
rendered with a typo'd variable would otherwise reach a model as a silently empty slot.

Rendering runs in Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: templates come from whoever may push to a project, and
render inside the gateway, so they may read their variables and nothing else.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from genai.errors import MissingDependencyError, ValidationError

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ROLES", "TYPES", "ChatMessages", "Message", "PromptTemplate", "Variable"]

VariableType = Literal["str", "int", "float", "bool", "list", "dict"]
Role = Literal["system", "user", "assistant"]
TYPES: tuple[str, ...] = get_args(VariableType)
ROLES: tuple[str, ...] = get_args(Role)
#: What a chat template renders to: OpenAI chat messages.
ChatMessages = list[dict[str, str]]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (Mapping,),
}


@functools.cache
def jinja_env() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment every template renders in (stateless, so shared)."""
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as error:
        raise MissingDependencyError(
            "jinja2", extra="prompts", purpose="Rendering prompt templates"
        ) from error
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def used_variables(source: str, *, where: str = "the template") -> dict[str, VariableType]:
    """The variables a Jinja source reads (its undeclared names, less Jinja's globals), each
    with the type its use suggests: iterated or indexed by number → list, read by attribute
    or key → dict, anything else → str."""
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = jinja_env()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as error:
        raise ValidationError(
            f"{where} is not valid Jinja (line {error.lineno}: {error.message}): fix the "
            "syntax, e.g. close every {{ … }} and {% … %}",
            field="template",
        ) from None
    names = set(meta.find_undeclared_variables(ast)) - set(env.globals)
    found: dict[str, VariableType] = dict.fromkeys(names, "str")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if isinstance(target, nodes.Name) and target.name in names:
            index = getattr(node, "arg", None)
            as_list = isinstance(index, nodes.Const) and isinstance(index.value, int)
            if found[target.name] != "list":
                found[target.name] = "list" if as_list else "dict"
    for loop in ast.find_all(nodes.For):
        if isinstance(loop.iter, nodes.Name) and loop.iter.name in names:
            found[loop.iter.name] = "list"
    return found


@dataclass(frozen=True)
class Variable:
    """A declared input: its type, an optional default (then it may be left out), a note."""

    type: VariableType = "str"
    default: Any = None
    description: str = ""
    required: bool = True

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValidationError(
                f"unknown variable type {self.type!r}: use one of {', '.join(TYPES)}",
                field="variables",
            )
        if not self.required and self.default is not None and not _is(self.type, self.default):
            raise ValidationError(
                f"the default {self.default!r} is not a {self.type}: give a default of the "
                "declared type, or change the type",
                field="variables",
            )

    @classmethod
    def parse(cls, name: str, spec: Variable | Mapping[str, Any] | str) -> Variable:
        """``"int"``, ``{"type": "int", "default": 3, "description": "…"}`` or a Variable;
        a default makes the variable optional."""
        if isinstance(spec, Variable):
            return spec
        if isinstance(spec, str):
            return cls(type=cast(VariableType, spec))
        if not isinstance(spec, Mapping):
            raise ValidationError(
                f"variable {name!r}: write a type (e.g. {name}: str) or a mapping with type, "
                f"default and description, not {spec!r}",
                field="variables",
            )
        unknown = sorted(set(spec) - {"type", "default", "description", "required"})
        if unknown:
            raise ValidationError(
                f"variable {name!r} has unknown key(s) {', '.join(unknown)}: use type, default "
                "and description",
                field="variables",
            )
        has_default = "default" in spec
        required = bool(spec.get("required", not has_default))
        if required and has_default:
            raise ValidationError(
                f"variable {name!r} is required and has a default: drop one of them",
                field="variables",
            )
        try:
            return cls(
                type=cast(VariableType, spec.get("type", "str")),
                default=spec.get("default"),
                description=str(spec.get("description") or ""),
                required=required,
            )
        except ValidationError as error:
            raise ValidationError(f"variable {name!r}: {error.message}", field=name) from None

    def to_dict(self) -> dict[str, Any]:
        """The canonical spec (what the registry stores and hashes)."""
        out: dict[str, Any] = {"type": self.type}
        if not self.required:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        return out

    def describe(self) -> str:
        return self.type if self.required else f"{self.type} = {self.default!r}"


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValidationError(
                f"unknown message role {self.role!r}: use one of {', '.join(ROLES)}",
                field="messages",
            )
        if not isinstance(self.content, str):
            raise ValidationError(
                f"the content of a {self.role} message must be text, not {self.content!r}",
                field="messages",
            )

    @classmethod
    def parse(cls, item: Message | Mapping[str, Any] | Sequence[str]) -> Message:
        """``{"role": "user", "content": "…"}``, ``{"user": "…"}`` or ``("user", "…")``."""
        if isinstance(item, Message):
            return item
        if isinstance(item, Mapping):
            if set(item) == {"role", "content"}:
                return cls(role=item["role"], content=item["content"])
            if len(item) == 1:
                ((role, content),) = item.items()
                return cls(role=cast(Role, role), content=content)
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            return cls(role=cast(Role, item[0]), content=item[1])
        raise ValidationError(
            f"a message is {{role: …, content: …}}, {{user: …}} or (role, content), not {item!r}",
            field="messages",
        )


class PromptTemplate:
    """A chat template (``messages``) or a text template (``text``), with its variables.

    Leave ``variables`` out to infer them from the Jinja source: each one required, a
    ``list`` when iterated, a ``dict`` when read by key or attribute, else a ``str``.
    ``render`` returns OpenAI chat messages for a chat template and a string for a text
    template. Immutable: a changed prompt is a new template (and a new version).
    """

    __slots__ = ("_compiled", "_messages", "_text", "_variables")

    def __init__(
        self,
        *,
        messages: Sequence[Message | Mapping[str, Any] | Sequence[str]] | None = None,
        text: str | None = None,
        variables: Mapping[str, Variable | Mapping[str, Any] | str] | None = None,
    ) -> None:
        if (messages is None) == (text is None):
            raise ValidationError(
                "a prompt template has either messages (chat) or text, and not both",
                field="template",
            )
        if text is not None and not isinstance(text, str):
            raise ValidationError(f"text must be a string, not {text!r}", field="text")
        if messages is not None and (isinstance(messages, str | Mapping) or not messages):
            raise ValidationError(
                "a chat template needs a non-empty list of messages", field="messages"
            )
        parsed = tuple(Message.parse(m) for m in messages or ())
        sources = [m.content for m in parsed] if text is None else [text]
        used: dict[str, VariableType] = {}
        for i, source in enumerate(sources):
            where = "the text" if text is not None else f"message {i + 1} ({parsed[i].role})"
            for name, kind in used_variables(source, where=where).items():
                used[name] = kind if used.get(name, "str") == "str" else used[name]
        if variables is None:
            declared = {name: Variable(type=used[name]) for name in sorted(used)}
        elif isinstance(variables, Mapping):
            declared = {name: Variable.parse(name, spec) for name, spec in variables.items()}
        else:
            raise ValidationError(
                f"variables must be a mapping of name to type or spec, not {variables!r}",
                field="variables",
            )
        _check_declared(used, declared)
        env = jinja_env()
        self._messages = parsed
        self._text = text
        self._variables: Mapping[str, Variable] = MappingProxyType(dict(sorted(declared.items())))
        self._compiled: tuple[Template, ...] = tuple(env.from_string(s) for s in sources)

    @property
    def messages(self) -> tuple[Message, ...]:
        return self._messages

    @property
    def text(self) -> str | None:
        return self._text

    @property
    def variables(self) -> Mapping[str, Variable]:
        return self._variables

    # ------------------------------------------------------------ shape

    @property
    def kind(self) -> Literal["chat", "text"]:
        return "text" if self.text is not None else "chat"

    @property
    def required(self) -> list[str]:
        return [name for name, v in self.variables.items() if v.required]

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: v.default for name, v in self.variables.items() if not v.required}

    def to_dict(self) -> dict[str, Any]:
        """The file format (JSON/YAML): ``messages`` or ``text``, and ``variables``."""
        body: dict[str, Any] = (
            {"text": self.text}
            if self.text is not None
            else {"messages": [{"role": m.role, "content": m.content} for m in self.messages]}
        )
        body["variables"] = {name: v.to_dict() for name, v in self.variables.items()}
        return body

    def registry_payload(self) -> tuple[str | list[dict[str, str]], dict[str, Any]]:
        """``(template, variables)`` as :meth:`genai.registry.Prompts.register` takes them."""
        variables = {name: v.to_dict() for name, v in self.variables.items()}
        if self.text is not None:
            return self.text, variables
        return [{"role": m.role, "content": m.content} for m in self.messages], variables

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PromptTemplate):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def __repr__(self) -> str:
        names = ", ".join(f"{n}: {v.describe()}" for n, v in self.variables.items())
        size = f"{len(self.messages)} messages" if self.kind == "chat" else "text"
        return f"<PromptTemplate {self.kind}, {size}, variables({names})>"

    # ------------------------------------------------------------ rendering

    def check(
        self, variables: Mapping[str, Any] | None = None, *, where: str = "this prompt"
    ) -> dict[str, Any]:
        """The values a render uses (defaults filled in), or a ValidationError that names
        every missing, unexpected and wrongly-typed variable."""
        given = dict(variables or {})
        missing = [n for n in self.required if n not in given]
        unexpected = sorted(n for n in given if n not in self.variables)
        wrong = [
            f"{n!r} must be {self.variables[n].type}, got {type(v).__name__} {_short(v)}"
            for n, v in given.items()
            if n in self.variables and not _is(self.variables[n].type, v)
        ]
        problems = []
        if missing:
            listed = ", ".join(f"{n!r} ({self.variables[n].type})" for n in missing)
            problems.append(f"missing variable(s) {listed}")
        if unexpected:
            declared = ", ".join(self.variables) or "none"
            problems.append(
                f"unexpected variable(s) {', '.join(map(repr, unexpected))} "
                f"(it declares: {declared})"
            )
        problems.extend(wrong)
        if problems:
            first = (missing or unexpected or [n for n in given if n in self.variables])[0]
            raise ValidationError(
                f"{where}: {'; '.join(problems)}. Pass each declared variable with its type "
                "(those with a default may be left out)",
                field=first,
            )
        return {**self.defaults, **given}

    def render(
        self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> ChatMessages | str:
        """Chat messages (``[{"role": …, "content": …}]``) or the text, for these values."""
        return self.render_as(variables, where="this prompt", **kwargs)

    def render_as(
        self, variables: Mapping[str, Any] | None = None, /, *, where: str, **kwargs: Any
    ) -> ChatMessages | str:
        """:meth:`render`, with errors that say which prompt (``where``) failed."""
        values = self.check({**(variables or {}), **kwargs}, where=where)
        outputs = [_run(template, values, where) for template in self._compiled]
        if self.text is not None:
            return outputs[0]
        pairs = zip(self.messages, outputs, strict=True)
        return [{"role": m.role, "content": out} for m, out in pairs]

    def coerce(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Values typed from strings (the CLI's ``--var k=v``): ints, floats, booleans
        (true/false/yes/no/1/0) and JSON for lists and dicts; unknown names pass through so
        that :meth:`check` reports them."""
        out: dict[str, Any] = {}
        for name, text in raw.items():
            spec = self.variables.get(name)
            out[name] = text if spec is None else _coerce(name, spec.type, text)
        return out

    # ------------------------------------------------------------ other frameworks

    def to_langchain(self) -> Any:
        """A LangChain ``ChatPromptTemplate`` or ``PromptTemplate`` (Jinja2 format) with the
        same variables; defaults become partial variables."""
        from prompts._export import to_langchain

        return to_langchain(self)

    def to_llama_index(self) -> Any:
        """A LlamaIndex ``PromptTemplate`` / ``ChatPromptTemplate`` (templates of plain
        ``{{ name }}`` slots), or a ``RichPromptTemplate`` (Jinja) for the others."""
        from prompts._export import to_llama_index

        return to_llama_index(self)

    def to_yaml(self) -> str:
        """The file format as YAML: what ``genai prompt push`` reads, and what diffs show."""
        from prompts._files import to_yaml

        return to_yaml(self)

    # ------------------------------------------------------------ notebooks

    def _repr_html_(self) -> str:
        from prompts._display import html_of

        return html_of(self, title="prompt template")

    def __rich__(self) -> Any:
        from prompts._display import rich_of

        return rich_of(self, title="prompt template")


def _check_declared(used: Mapping[str, str], declared: Mapping[str, Variable]) -> None:
    undeclared = sorted(set(used) - set(declared))
    unused = sorted(set(declared) - set(used))
    if undeclared:
        raise ValidationError(
            f"the template uses variable(s) {', '.join(map(repr, undeclared))} that it does not "
            f"declare: add them under variables (e.g. {undeclared[0]}: str)",
            field=undeclared[0],
        )
    if unused:
        raise ValidationError(
            f"variable(s) {', '.join(map(repr, unused))} are declared but the template never "
            f"uses them: remove them, or use them (e.g. {{{{ {unused[0]} }}}})",
            field=unused[0],
        )


def _is(kind: str, value: Any) -> bool:
    if kind in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[kind])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _run(template: Template, values: dict[str, Any], where: str) -> str:
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError, UndefinedError

    try:
        return template.render(values)
    except SecurityError as error:
        raise ValidationError(
            f"{where} tried an operation the sandbox refuses ({error}): templates may read "
            "their variables and nothing else",
            field="template",
        ) from None
    except UndefinedError as error:
        raise ValidationError(
            f"{where} could not render: {error.message}. Check the structure of the values "
            "passed (e.g. the keys of a dict variable)",
            field="template",
        ) from None
    except TemplateError as error:
        raise ValidationError(f"{where} could not render: {error}", field="template") from None


_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}
_EXAMPLES = {"int": "3", "float": "0.5", "bool": "true", "list": '["a","b"]', "dict": '{"k":1}'}


def _coerce(name: str, kind: str, text: str) -> Any:
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError(text)
        value = json.loads(text)
        if not _is(kind, value):
            raise ValueError(text)
        return value
    except ValueError:
        raise ValidationError(
            f"variable {name!r} is a {kind}, and {text!r} does not read as one: write e.g. "
            f"{name}={_EXAMPLES[kind]}",
            field=name,
        ) from None
