"""Prompt management: templates, a per-project registry with labels, rendering, clients.

    >>> from prompts import PromptHub, PromptTemplate
    >>> qa = PromptTemplate(
    ...     messages=[("system", "Answer from {{ company }}'s documents."),
    ...               ("user", "{{ question }}")],
    ...     variables={"company": {"type": "str", "default": "ACME"}, "question": "str"},
    ... )
    >>> qa.render(question="Where is my invoice?")[1]
    {'role': 'user', 'content': 'Where is my invoice?'}
    >>> hub = PromptHub(client, "support-bot")                        # doctest: +SKIP
    >>> hub.push("qa", qa, message="first cut", label="staging")      # doctest: +SKIP

Templates are Jinja2, rendered in a sandbox, with declared and checked variables
(:class:`PromptTemplate`). Versions, labels and their audit trail are the registry's
(:class:`genai.registry.Prompts`); :class:`PromptHub` adds files, diffs, rollback and a
read cache that survives a database outage. It imports ``genai`` only.
"""

from prompts._cache import LastGoodCache, is_unreachable
from prompts._files import TEXT_SUFFIXES, from_dict, load, to_yaml
from prompts._hub import PromptHub, parse_ref
from prompts._template import ROLES, TYPES, ChatMessages, Message, PromptTemplate, Variable
from prompts._version import PromptVersion

__all__ = [
    "ROLES",
    "TEXT_SUFFIXES",
    "TYPES",
    "ChatMessages",
    "LastGoodCache",
    "Message",
    "PromptHub",
    "PromptTemplate",
    "PromptVersion",
    "Variable",
    "from_dict",
    "is_unreachable",
    "load",
    "parse_ref",
    "to_yaml",
]
