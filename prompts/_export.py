"""Templates as LangChain and LlamaIndex prompt objects, for code already built on them.

The exports render the same text as :meth:`PromptTemplate.render` (the tests compare them),
so a prompt moved from a notebook into a LangChain chain or a LlamaIndex query engine keeps
its wording. Both libraries are optional and imported here only.

LangChain renders Jinja2 itself (``template_format="jinja2"``, in its sandbox). LlamaIndex's
classic templates use ``{name}`` slots and cannot express Jinja logic or literal braces, so
templates made of plain ``{{ name }}`` slots become classic templates and the others become
a ``RichPromptTemplate`` (Jinja, rendered by LlamaIndex's ``banks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genai.errors import MissingDependencyError

if TYPE_CHECKING:
    from prompts._template import PromptTemplate

__all__ = ["format_string", "to_langchain", "to_llama_index"]

_LANGCHAIN_ROLES = {"system": "system", "user": "human", "assistant": "ai"}


def to_langchain(template: PromptTemplate) -> Any:
    try:
        from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
    except ImportError as error:
        raise MissingDependencyError(
            "langchain-core", extra="integrations", purpose="Exporting prompts to LangChain"
        ) from error
    prompt: Any
    if template.text is not None:
        prompt = PromptTemplate.from_template(template.text, template_format="jinja2")
    else:
        prompt = ChatPromptTemplate.from_messages(
            [(_LANGCHAIN_ROLES[m.role], m.content) for m in template.messages],
            template_format="jinja2",
        )
    return prompt.partial(**template.defaults) if template.defaults else prompt


def to_llama_index(template: PromptTemplate) -> Any:
    try:
        from llama_index.core.llms import ChatMessage
        from llama_index.core.prompts import ChatPromptTemplate, PromptTemplate, RichPromptTemplate
    except ImportError as error:
        raise MissingDependencyError(
            "llama-index-core", extra="integrations", purpose="Exporting prompts to LlamaIndex"
        ) from error
    if template.text is not None:
        slots = [format_string(template.text)]
    else:
        slots = [format_string(m.content) for m in template.messages]
    prompt: Any
    if all(s is not None for s in slots):
        if template.text is not None:
            prompt = PromptTemplate(str(slots[0]))
        else:
            prompt = ChatPromptTemplate(
                message_templates=[
                    ChatMessage(role=m.role, content=s)
                    for m, s in zip(template.messages, slots, strict=True)
                ]
            )
    elif template.text is not None:
        prompt = RichPromptTemplate(template.text)
    else:
        prompt = RichPromptTemplate(
            "".join(
                f'{{% chat role="{m.role}" %}}{m.content}{{% endchat %}}' for m in template.messages
            )
        )
    return prompt.partial_format(**template.defaults) if template.defaults else prompt


def format_string(source: str) -> str | None:
    """``source`` as a ``{name}`` format string when it is literal text and plain
    ``{{ name }}`` slots only (no tags, filters, attributes or literal braces), else None."""
    from jinja2 import nodes

    from prompts._template import jinja_env

    body = jinja_env().parse(source).body
    if not body:
        return ""
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    out = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            if "{" in node.data or "}" in node.data:
                return None
            out.append(node.data)
        elif isinstance(node, nodes.Name):
            out.append("{" + node.name + "}")
        else:
            return None
    return "".join(out)
