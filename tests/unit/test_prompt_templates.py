"""Prompt templates without a database: rendering, the errors that name bad variables, the
sandbox, variable inference, prompt files, the YAML round trip, notebook displays, and the
LangChain / LlamaIndex exports rendering the same text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genai.errors import ValidationError
from prompts import PromptTemplate, Variable, from_dict, load

QA = {
    "messages": [
        {"role": "system", "content": "Answer from {{ company }}'s documents.\nBe brief."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "company": {"type": "str", "default": "ACME", "description": "Whose documents"},
        "question": {"type": "str", "description": "The user's question"},
    },
}


@pytest.fixture
def qa() -> PromptTemplate:
    return from_dict(QA)


def _error(call, *args, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------ rendering


def test_chat_template_renders_openai_messages_with_defaults(qa: PromptTemplate) -> None:
    assert qa.kind == "chat"
    assert qa.required == ["question"] and qa.defaults == {"company": "ACME"}
    assert qa.render(question="Where is my invoice?") == [
        {"role": "system", "content": "Answer from ACME's documents.\nBe brief."},
        {"role": "user", "content": "Where is my invoice?"},
    ]
    # a mapping and keywords together; an explicit value beats the default
    rendered = qa.render({"company": "Globex"}, question="Hi")
    assert isinstance(rendered, list)
    assert rendered[0]["content"].startswith("Answer from Globex's")


def test_text_template_with_loops_and_typed_variables() -> None:
    template = PromptTemplate(
        text="Context:\n{% for d in docs %}- {{ d.title }}: {{ d.body }}\n{% endfor %}"
        "Top {{ k }} of {{ total }}; strict={{ strict }}; {{ extra['source'] }}",
        variables={
            "docs": "list",
            "k": {"type": "int", "default": 3},
            "total": "float",
            "strict": "bool",
            "extra": "dict",
        },
    )
    out = template.render(
        docs=[{"title": "A", "body": "one"}, {"title": "B", "body": "two"}],
        total=2.5,
        strict=True,
        extra={"source": "faq"},
    )
    assert out == "Context:\n- A: one\n- B: two\nTop 3 of 2.5; strict=True; faq"
    out = template.render(docs=[], total=1, strict=False, extra={"source": "x"})
    assert isinstance(out, str) and out.endswith("Top 3 of 1; strict=False; x")  # an int is a float


@pytest.mark.parametrize(
    ("given", "names", "field"),
    [
        ({}, ["missing variable(s) 'question' (str)"], "question"),
        (
            {"question": "q", "qestion": "typo"},
            ["unexpected variable(s) 'qestion'", "it declares: company, question"],
            "qestion",
        ),
        ({"question": 42}, ["'question' must be str, got int 42"], "question"),
        (
            {"qestion": "q", "company": 1},
            ["missing variable(s) 'question'", "unexpected variable(s) 'qestion'", "'company'"],
            "question",
        ),
    ],
)
def test_render_errors_name_every_bad_variable(
    qa: PromptTemplate, given: dict[str, Any], names: list[str], field: str
) -> None:
    error = _error(qa.render, given)
    for name in names:
        assert name in error.message, error.message
    assert error.field == field
    assert "Pass each declared variable" in error.message  # and say how to fix it


def test_type_checks_are_strict_about_bools_and_numbers() -> None:
    template = PromptTemplate(text="{{ n }} {{ x }}", variables={"n": "int", "x": "float"})
    assert "'n' must be int, got bool True" in _error(template.render, n=True, x=1.0).message
    assert "'x' must be float, got str" in _error(template.render, n=1, x="1.0").message
    assert template.render(n=1, x=2) == "1 2"


def test_the_sandbox_refuses_anything_but_reading_variables() -> None:
    escape = PromptTemplate(text="{{ x.__class__.__mro__ }}", variables={"x": "str"})
    error = _error(escape.render, x="a")
    assert "sandbox refuses" in error.message and "__class__" in error.message
    mutate = PromptTemplate(text="{{ xs.append(1) }}{{ xs }}", variables={"xs": "list"})
    assert "sandbox refuses" in _error(mutate.render, xs=[]).message
    missing_key = PromptTemplate(text="{{ d.nope }}", variables={"d": "dict"})
    assert "has no attribute 'nope'" in _error(missing_key.render, d={}).message


# ------------------------------------------------------------------ building templates


def test_variables_are_inferred_from_the_jinja_source() -> None:
    template = PromptTemplate(
        text="{{ name }} {{ user.id }} {{ xs[0] }} {{ m['k'] }}"
        "{% for d in docs %}{{ d }}{% endfor %}{% if flag %}!{% endif %}{{ range(2)|list }}"
    )
    kinds = {name: v.type for name, v in template.variables.items()}
    assert kinds == {
        "docs": "list",
        "flag": "str",
        "m": "dict",
        "name": "str",
        "user": "dict",
        "xs": "list",
    }  # jinja's own globals (range) are not variables
    assert all(v.required for v in template.variables.values())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text": "{{ a }} {{ b }}", "variables": {"a": "str"}}, "does not declare: add them"),
        ({"text": "{{ a }}", "variables": {"a": "str", "b": "str"}}, "never uses them"),
        ({"text": "{{ a ", "variables": None}, "is not valid Jinja (line 1"),
        ({"text": "x", "messages": [("user", "y")]}, "either messages (chat) or text"),
        ({"messages": []}, "non-empty list of messages"),
        ({"messages": [("robot", "hi")]}, "unknown message role 'robot'"),
        ({"text": "{{ a }}", "variables": {"a": "string"}}, "unknown variable type 'string'"),
        ({"text": "{{ a }}", "variables": {"a": {"type": "int", "default": "3"}}}, "not a int"),
        ({"text": "{{ a }}", "variables": {"a": {"type": "str", "typo": 1}}}, "unknown key(s)"),
        (
            {"text": "{{ a }}", "variables": {"a": {"default": "x", "required": True}}},
            "required and has a default",
        ),
    ],
)
def test_bad_templates_are_refused_when_built(kwargs: dict[str, Any], expected: str) -> None:
    assert expected in _error(PromptTemplate, **kwargs).message


def test_message_shorthands_and_equality(qa: PromptTemplate) -> None:
    same = PromptTemplate(
        messages=[
            ("system", "Answer from {{ company }}'s documents.\nBe brief."),
            {"user": "{{ question }}"},
        ],
        variables={
            "company": Variable(
                type="str", default="ACME", description="Whose documents", required=False
            ),
            "question": {"description": "The user's question"},
        },
    )
    assert same == qa and hash(same) == hash(qa)
    assert same.to_dict() == QA
    assert "company: str = 'ACME'" in repr(qa)


def test_coerce_types_cli_strings() -> None:
    template = PromptTemplate(
        text="{{ s }}{{ i }}{{ f }}{{ b }}{{ l }}{{ d }}",
        variables={"s": "str", "i": "int", "f": "float", "b": "bool", "l": "list", "d": "dict"},
    )
    raw = {"s": "3", "i": "3", "f": "0.5", "b": "yes", "l": '["a"]', "d": '{"k": 1}', "z": "?"}
    assert template.coerce(raw) == {
        "s": "3",
        "i": 3,
        "f": 0.5,
        "b": True,
        "l": ["a"],
        "d": {"k": 1},
        "z": "?",
    }
    error = _error(template.coerce, {"i": "three"})
    assert "variable 'i' is a int" in error.message and "i=3" in error.message


# ------------------------------------------------------------------ files


def test_prompt_files_yaml_json_and_text(tmp_path: Path, qa: PromptTemplate) -> None:
    (tmp_path / "qa.json").write_text(json.dumps(QA))
    (tmp_path / "qa.yaml").write_text(qa.to_yaml())
    (tmp_path / "hello.md").write_text("Hello {{ name }}!\n")
    assert load(tmp_path / "qa.json") == qa
    assert load(tmp_path / "qa.yaml") == qa
    hello = load(tmp_path / "hello.md")
    assert hello.kind == "text" and hello.render(name="Ada") == "Hello Ada!"  # as Jinja does


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.toml", "x", "cannot tell the format of 'p.toml'"),
        ("p.json", "{nope", "is not valid JSON (line 1"),
        ("p.yaml", "text: [unclosed", "is not valid YAML"),
        ("p.yaml", "- a list", "holds a mapping with 'messages'"),
        ("p.yaml", "text: hi\ntemperature: 0.2", "unknown key(s) 'temperature'"),
        ("p.yaml", "kind: text\nmessages: [{user: hi}]", "kind is 'text' but the file has"),
    ],
)
def test_bad_prompt_files_say_what_is_wrong(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    (tmp_path / name).write_text(content)
    assert expected in _error(load, tmp_path / name).message
    assert "does not exist" in _error(load, tmp_path / "ghost.yaml").message


@pytest.mark.parametrize(
    "text",
    [
        "one line",
        "two\nlines",
        "  leading spaces\nand more",
        "trailing newline\n",
        "tabs\tinside\nyes",
        "# not a comment\n- not a list\n  indented: not a key",
        'quotes " and \' and {{ "braces" }}',
        "blank\n\nlines\n   \nwith spaces",
        "ünïcode ✓\nline",
        "ends with space \nx ",
    ],
)
def test_yaml_round_trip_keeps_text_exactly(text: str) -> None:
    import yaml

    template = PromptTemplate(text=text, variables={})
    assert from_dict(yaml.safe_load(template.to_yaml())).text == text
    chat = PromptTemplate(messages=[("user", text)], variables={})
    assert from_dict(yaml.safe_load(chat.to_yaml())).messages[0].content == text


# ------------------------------------------------------------------ notebooks and exports


def test_notebook_displays_escape_the_template() -> None:
    template = PromptTemplate(
        messages=[("system", "<script>alert(1)</script> {{ q }}")], variables={"q": "str"}
    )
    html = template._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "required" in html
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(template)
    text = console.export_text()
    assert "<script>alert(1)</script> {{ q }}" in text and "system" in text


@pytest.mark.parametrize("simple", [True, False])
def test_langchain_export_renders_the_same(qa: PromptTemplate, simple: bool) -> None:
    template = (
        qa
        if simple
        else from_dict(
            {
                "messages": [
                    {
                        "role": "system",
                        "content": "{% for d in docs %}[{{ loop.index }}] {{ d }}\n{% endfor %}",
                    },
                    {"role": "user", "content": "{{ question | upper }}"},
                    {"role": "assistant", "content": "ok"},
                ],
                "variables": {"docs": "list", "question": "str"},
            }
        )
    )
    values = {"question": "where?"} | ({} if simple else {"docs": ["a", "b"]})
    exported = template.to_langchain()
    messages = exported.format_messages(**values)
    rendered = template.render(values)
    assert isinstance(rendered, list)
    assert [(m.type, m.content) for m in messages] == [
        ({"system": "system", "user": "human", "assistant": "ai"}[m["role"]], m["content"])
        for m in rendered
    ]
    text = from_dict(
        {
            "text": "Q: {{ q }} ({{ lang }})",
            "variables": {"q": "str", "lang": {"type": "str", "default": "en"}},
        }
    )
    assert text.to_langchain().format(q="x") == text.render(q="x") == "Q: x (en)"


def test_llama_index_export_renders_the_same(qa: PromptTemplate) -> None:
    from llama_index.core.prompts import ChatPromptTemplate, RichPromptTemplate
    from llama_index.core.prompts import PromptTemplate as LiPrompt

    simple = qa.to_llama_index()
    assert isinstance(simple, ChatPromptTemplate)
    rendered = qa.render(question="why?")
    assert isinstance(rendered, list)
    assert [(m.role.value, m.content) for m in simple.format_messages(question="why?")] == [
        (m["role"], m["content"]) for m in rendered
    ]
    text = PromptTemplate(text="Q: {{ q }}", variables={"q": "str"})
    assert isinstance(text.to_llama_index(), LiPrompt)
    assert text.to_llama_index().format(q="x") == "Q: x"
    braces = PromptTemplate(
        text='Reply as JSON {"answer": …} to {% if q %}{{ q }}{% endif %}',
        variables={"q": "str"},
    )
    rich = braces.to_llama_index()
    assert isinstance(rich, RichPromptTemplate)
    assert rich.format(q="why") == braces.render(q="why")


def test_import_prompts_loads_no_framework() -> None:
    """LangChain, LlamaIndex and YAML load only when an export or a YAML file needs them."""
    import subprocess
    import sys

    code = (
        "import sys, prompts; prompts.PromptTemplate(text='{{ x }}').render(x='y');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'langchain_core', 'llama_index', 'yaml', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
