"""The semantic cache on its own, with the real bundled embedder (loaded once per module):
exact and semantic hits, the second check (open vs close, numbers, negation, names, an
ambiguous margin), multi-turn keys, TTL, the LRU bound, invalidation by every partition
field, tenancy, feedback and counters; the entry store contract
(``cache.testing.EntryStoreSuite``) on the in-process entries.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _clocks import ManualClock

from cache import (
    DEFAULT_THRESHOLD,
    LexicalVerifier,
    Partition,
    SemanticCache,
    calibrate,
    load_pairs,
    output_params,
    request_key,
)
from cache._calibrate import LabelledPair
from cache._entries import EntryStore, MemoryEntries
from cache.testing import EntryStoreSuite
from genai.errors import ValidationError
from genai.vectors import ChromaVectorStore, InMemoryVectorStore

OPEN = "How do I open an account?"
PART = Partition(project_id=1, deployment="support")


class MemoEmbedder:
    """The bundled model, loaded once per module; each text is embedded once (the tests
    ask the same questions many times)."""

    def __init__(self) -> None:
        from genai.models import SentenceTransformerEmbedder

        self.model = SentenceTransformerEmbedder()
        self.model.warm()
        self.model_name = self.model.model_name
        self.memo: dict[str, Any] = {}

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        todo = [text for text in texts if text not in self.memo]
        if todo:
            self.memo.update(zip(todo, self.model.embed(todo), strict=True))
        return np.stack([self.memo[text] for text in texts])


@pytest.fixture(scope="module")
def embedder() -> MemoEmbedder:
    return MemoEmbedder()


@pytest.fixture
def cache(embedder: Any, clock: ManualClock) -> Iterator[SemanticCache]:
    made = SemanticCache(InMemoryVectorStore(), embedder, clock=clock)
    yield made
    made.close()


# ------------------------------------------------------------------ the two tiers


def test_the_same_request_is_an_exact_hit_after_normalisation(cache: SemanticCache) -> None:
    entry = cache.store(PART, OPEN, "Settings → Accounts → Open.", tokens=40, cost_usd=0.002)
    hit = cache.lookup(PART, "  how do I   OPEN an account?")
    assert hit is not None and hit.tier == "exact" and hit.score == 1.0
    assert (hit.entry_id, hit.answer, hit.tokens) == (entry, "Settings → Accounts → Open.", 40)


@pytest.mark.parametrize(
    "paraphrase",
    ["how can I open an account", "What are the steps to open an account?", "open an account how"],
)
def test_a_paraphrase_is_a_semantic_hit(cache: SemanticCache, paraphrase: str) -> None:
    cache.store(PART, OPEN, "Settings → Accounts → Open.")
    hit = cache.lookup(PART, paraphrase)
    assert hit is not None and hit.tier == "semantic"
    assert DEFAULT_THRESHOLD <= hit.score < 1.0


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Is the store open on Sunday?", "Is the store closed on Sunday?"),  # 0.945: antonym
        ("How do I increase my credit limit?", "How do I decrease my credit limit?"),  # 0.906
        ("How do I enable two-factor login?", "How do I disable two-factor login?"),  # 0.875
        (OPEN, "How do I close an account?"),  # 0.683
        ("What is the fee for 2 transfers?", "What is the fee for 3 transfers?"),  # numbers
        ("What was the revenue in 2023?", "What was the revenue in 2024?"),  # 0.93
        ("Can I open an account online?", "Can't I open an account online?"),  # negation
        ("Can I travel with a pet?", "Can I travel without a pet?"),  # 0.9
        ("What is the weather in Paris today?", "What is the weather in London today?"),  # names
        ("Does the A100 support FP8?", "Does the H100 support FP8?"),
        # the same operands in other roles (order)
        ("Is 7 greater than 3?", "Is 3 greater than 7?"),  # 0.996
        ("Subtract 9 from 4", "Subtract 4 from 9"),  # 0.996
        ("How many days are there from 4 to 9?", "How many days are there from 9 to 4?"),
        ("Convert 5 USD to EUR", "Convert 5 EUR to USD"),  # 0.982
        ("Alice pays Bob", "Bob pays Alice"),  # 0.986
    ],
)
def test_close_questions_that_ask_something_else_miss(
    embedder: Any, clock: ManualClock, cached: str, asked: str
) -> None:
    """Even with a threshold far below the default, the second check turns these away."""
    cache = SemanticCache(InMemoryVectorStore(), embedder, clock=clock, threshold=0.6)
    cache.store(PART, cached, "the cached answer")
    vectors = embedder.embed([cached, asked])
    assert float(vectors[0] @ vectors[1]) >= 0.65, "the embedding alone finds them alike"
    assert cache.lookup(PART, asked) is None
    assert LexicalVerifier().reject(asked, cached) is not None
    assert cache.lookup(PART, cached) is not None


@pytest.mark.parametrize("asked", ["what's 7 + 3", "What's 7 plus 3?"])
def test_the_same_operands_in_the_same_roles_hit(cache: SemanticCache, asked: str) -> None:
    cache.store(PART, "What is 7 plus 3?", "10")
    hit = cache.lookup(PART, asked)
    assert hit is not None and hit.tier == "semantic" and hit.answer == "10"
    assert cache.lookup(PART, "What is 3 plus 7?") is None  # swapped: a miss, not a risk


def test_two_equally_good_candidates_are_a_miss(embedder: Any, clock: ManualClock) -> None:
    """The margin: when the embedding cannot say which cached question was meant."""
    cache = SemanticCache(InMemoryVectorStore(), embedder, clock=clock)
    cache.store(PART, "How do I reset my password?", "answer A")
    cache.store(PART, "How can I reset my password?", "answer B")
    assert cache.lookup(PART, "I need to reset my password") is None  # 0.932 vs 0.934
    alone = SemanticCache(InMemoryVectorStore(), embedder, clock=clock)
    alone.store(PART, "How do I reset my password?", "answer A")
    assert alone.lookup(PART, "I need to reset my password") is not None
    no_margin = SemanticCache(InMemoryVectorStore(), embedder, clock=clock, margin=0.0)
    no_margin.store(PART, "How do I reset my password?", "answer A")
    no_margin.store(PART, "How can I reset my password?", "answer B")
    assert no_margin.lookup(PART, "I need to reset my password") is not None


def test_a_threshold_per_lookup_overrides_the_caches(cache: SemanticCache) -> None:
    cache.store(PART, OPEN, "answer")
    assert cache.lookup(PART, "What are the steps to open an account?", threshold=0.99) is None
    with pytest.raises(ValidationError, match="threshold"):
        cache.lookup(PART, OPEN, threshold=1.5)


def test_a_long_prompt_is_cached_exactly_only(cache: SemanticCache) -> None:
    preamble = "You are a helpful assistant for ACME. " * 40
    cache.store(PART, preamble + "What is the refund policy?", "30 days")
    assert cache.lookup(PART, preamble + "What is the refund policy?") is not None
    assert cache.lookup(PART, preamble + "What is the refund policy??") is None


# ------------------------------------------------------------------ multi-turn


def conversation(*turns: str, system: str = "You are a bank assistant.") -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": "system", "content": system}] + [
        {"role": roles[i % 2], "content": text} for i, text in enumerate(turns)
    ]


def test_the_context_enters_the_key(cache: SemanticCache) -> None:
    about_cards = conversation("I lost my credit card.", "I am sorry.", "What do I do now?")
    about_loans = conversation("I want a loan.", "Sure.", "What do I do now?")
    cache.store(PART, about_cards, "Block the card in the app.")
    assert cache.lookup(PART, about_loans) is None  # same last message, other conversation
    other_system = conversation("I lost my credit card.", "I am sorry.", "What do I do now?")
    other_system[0]["content"] = "You are a pirate."
    assert cache.lookup(PART, other_system) is None
    same = conversation("I lost my credit card.", "I am sorry.", "what should I do now?")
    hit = cache.lookup(PART, same)
    assert hit is not None and hit.tier == "semantic"  # same context, paraphrased question


def test_chat_keys_split_context_and_question() -> None:
    chat = conversation("Hi", "Hello!", "Where is my parcel?")
    key = request_key(PART, chat)
    assert key.question == "Where is my parcel?"
    assert request_key(PART, conversation("Hi", "Hello!", "Where is my order?")).scope == key.scope
    assert (
        request_key(PART, conversation("Hey", "Hello!", "Where is my parcel?")).scope != key.scope
    )
    parts = [{"role": "user", "content": [{"type": "text", "text": "Where is my parcel?"}]}]
    assert request_key(PART, parts).question == "Where is my parcel?"
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert request_key(PART, image).question is None  # an image is compared exactly only
    tool_turn = [*chat, {"role": "tool", "content": "{}", "tool_call_id": "1"}]
    assert request_key(PART, tool_turn).question is None
    assert request_key(PART, chat, session="s1").scope != key.scope


# ------------------------------------------------------------------ partitions


FIELDS: dict[str, Any] = {
    "project_id": 2,
    "deployment": "sales",
    "adapter": "legal-v2",
    "prompt_version": "qa@4",
    "params": output_params({"temperature": 0, "max_tokens": 100}),
    "kb_version": "kb@7",
    "revision": "3",
    "endpoint": "completions",
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_no_hit_crosses_a_partition_field(cache: SemanticCache, field: str) -> None:
    cache.store(PART, OPEN, "answer of the old partition")
    moved = dataclasses.replace(PART, **{field: FIELDS[field]})
    assert cache.lookup(moved, OPEN) is None
    assert cache.lookup(moved, "how can I open an account") is None
    assert cache.lookup(PART, OPEN) is not None


def test_another_project_never_hits_and_never_sees_the_entries(cache: SemanticCache) -> None:
    cache.store(PART, OPEN, "A's answer", request_id="req-a")
    other = Partition(project_id=2, deployment="support")
    assert cache.lookup(other, OPEN) is None
    assert cache.lookup(other, "how can I open an account") is None
    assert cache.feedback(2, "req-a") == 0  # B cannot evict A's entry by naming its request
    assert cache.invalidate(2) == 0
    assert cache.lookup(PART, OPEN) is not None
    assert cache.stats(2).entries == 0 and cache.stats(1).entries == 1


def test_a_prompt_and_chat_messages_never_share_an_entry(cache: SemanticCache) -> None:
    """A completion's body never answers a chat request (nor the reverse), even in one
    partition and for the same text: exact and semantic tiers alike."""
    chat = [{"role": "user", "content": OPEN}]
    cache.store(PART, chat, {"object": "chat.completion"})
    for prompt in (OPEN, "how can I open an account"):
        assert cache.lookup(PART, prompt) is None
    cache.store(PART, OPEN, {"object": "text_completion"})
    hit = cache.lookup(PART, [{"role": "user", "content": "how can I open an account"}])
    assert hit is not None and hit.answer == {"object": "chat.completion"}
    assert request_key(PART, OPEN).scope != request_key(PART, chat).scope


TOOL = {"type": "function", "function": {"name": "open_account", "parameters": {}}}
SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}}}
#: Requests whose answers have other shapes: none may answer another.
SHAPES: list[dict[str, Any]] = [
    {},
    {"response_format": {"type": "text"}},
    {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
    {"tools": [TOOL]},
    {"tools": [TOOL], "tool_choice": "none"},
    {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "open_account"}}},
]


def test_another_response_format_or_tool_set_never_shares_an_entry(cache: SemanticCache) -> None:
    body = {"model": "m", "messages": [], "stream": False}
    parts = [dataclasses.replace(PART, params=output_params({**body, **s})) for s in SHAPES]
    for i, part in enumerate(parts):
        for asked in (OPEN, "how can I open an account"):  # exact, then semantic
            assert cache.lookup(part, asked) is None, SHAPES[i]
        cache.store(part, OPEN, f"answer {i}")
    for i, part in enumerate(parts):
        hit = cache.lookup(part, "how can I open an account")
        assert hit is not None and hit.answer == f"answer {i}", SHAPES[i]


def test_output_params_keep_what_changes_the_answer() -> None:
    base = {"model": "m", "messages": [], "stream": True, "user": "u", "temperature": 0}
    assert output_params(base) == output_params({**base, "stream": False, "user": "v"})
    assert output_params(base) != output_params({**base, "temperature": 0.5})
    for name, value in [("seed", 1), ("max_tokens", 5), ("stop", ["x"]), ("n", 2),
                        ("tools", [{"type": "function"}]), ("response_format", {"type": "json"}),
                        ("logprobs", True), ("some_future_param", 1)]:  # fmt: skip
        assert output_params(base) != output_params({**base, name: value}), name


# ------------------------------------------------------------------ invalidation and bounds


def test_invalidate_a_deployment_or_the_whole_project(cache: SemanticCache) -> None:
    other = dataclasses.replace(PART, deployment="sales")
    cache.store(PART, OPEN, "a")
    cache.store(other, OPEN, "b")
    cache.store(dataclasses.replace(PART, prompt_version="qa@2"), OPEN, "c")
    assert cache.invalidate(1, "support", prompt_version="qa@2") == 1
    assert cache.invalidate(1, "support") == 1
    assert cache.lookup(PART, OPEN) is None and cache.lookup(other, OPEN) is not None
    assert cache.invalidate(1) == 1
    assert cache.lookup(other, OPEN) is None
    with pytest.raises(ValidationError, match="name the deployment"):
        cache.invalidate(1, adapter="x")


def test_entries_expire_after_their_ttl(embedder: Any, clock: ManualClock) -> None:
    cache = SemanticCache(InMemoryVectorStore(), embedder, clock=clock, ttl_s=60)
    cache.store(PART, OPEN, "answer")
    cache.store(PART, "What are your opening hours?", "9 to 5", ttl_s=600)
    clock.advance(59)
    assert cache.lookup(PART, OPEN) is not None
    clock.advance(2)
    assert cache.lookup(PART, OPEN) is None
    assert cache.lookup(PART, "how can I open an account") is None
    assert cache.lookup(PART, "What are your opening hours?") is not None
    assert cache.stats(1).entries == 1  # the expired one was deleted when met


def test_the_least_recently_used_entries_go_first(embedder: Any, clock: ManualClock) -> None:
    cache = SemanticCache(InMemoryVectorStore(), embedder, clock=clock, max_entries=3)
    questions = ["What is your address?", "What is your phone number?", "Who is the CEO?"]
    for question in questions:
        clock.advance(1)
        cache.store(PART, question, question.upper())
    clock.advance(1)
    assert cache.lookup(PART, questions[0]) is not None  # used: now the newest
    clock.advance(1)
    cache.store(PART, "Where do I park?", "Behind the building.")
    assert cache.lookup(PART, questions[1]) is None  # least recently used: evicted
    assert cache.lookup(PART, questions[0]) is not None
    assert cache.stats(1).entries == 3 and cache.stats(1).evictions == 1
    other = Partition(project_id=2, deployment="support")
    cache.store(other, "Who is the CEO?", "B's CEO")  # another project's bound is its own
    assert cache.stats(1).entries == 3


def test_storing_a_request_again_replaces_its_answer(cache: SemanticCache) -> None:
    first = cache.store(PART, OPEN, "old")
    second = cache.store(PART, OPEN, "new")
    assert first == second
    hit = cache.lookup(PART, OPEN)
    assert hit is not None and hit.answer == "new"
    assert cache.stats(1).entries == 1


# ------------------------------------------------------------------ busy scopes


@pytest.mark.parametrize("backend", ["memory", "chroma"])
def test_a_busy_scope_moves_to_its_own_collection(
    embedder: Any, clock: ManualClock, tmp_path: Path, backend: str
) -> None:
    vectors = InMemoryVectorStore() if backend == "memory" else ChromaVectorStore(tmp_path)
    cache = SemanticCache(vectors, embedder, clock=clock, index_after=3)
    questions = [
        "What is your address?",
        "What is your phone number?",
        "Who is the CEO?",
        "How do I open an account?",
    ]
    for question in questions[:2]:
        cache.store(PART, question, question.upper())
    scope = cache.key(PART, questions[0]).scope
    assert vectors.count(cache.collection(1, scope)) == 0  # small: searched from its rows
    assert cache.lookup(PART, "what's your phone number") is not None
    for question in questions[2:]:
        cache.store(PART, question, question.upper())
    assert vectors.count(cache.collection(1, scope)) == 4  # the whole scope was indexed
    hit = cache.lookup(PART, "what's your phone number")
    assert hit is not None and hit.answer == "WHAT IS YOUR PHONE NUMBER?"
    cache.evict(hit.entry_id, project_id=1)
    assert vectors.count(cache.collection(1, scope)) == 3
    assert cache.invalidate(1, "support") == 3
    assert vectors.count(cache.collection(1, scope)) == 0
    assert cache.lookup(PART, "Who is the CEO?") is None


@pytest.mark.parametrize("prefix", ["", "has space", "-lead", "a" * 65, "dots.in.it"])
def test_a_collection_prefix_that_names_would_change_is_refused(embedder: Any, prefix: str) -> None:
    with pytest.raises(ValidationError, match=r"collection_prefix .* is not valid"):
        SemanticCache(InMemoryVectorStore(), embedder, collection_prefix=prefix)


def test_only_collections_of_projects_without_entries_are_purged(
    embedder: Any, clock: ManualClock
) -> None:
    vectors = InMemoryVectorStore()
    cache = SemanticCache(vectors, embedder, clock=clock, index_after=1)
    cache.store(PART, OPEN, "open")
    kept = cache.collection(1, cache.key(PART, OPEN).scope)
    gone = cache.collection(7, cache.key(PART, OPEN).scope)  # project 7 holds no entry
    vectors.upsert(gone, ["x"], [cache.embed(OPEN)])
    other = "genai-cache-eu-p7-x"  # another cache's prefix: not ours to judge
    vectors.upsert(other, ["x"], [cache.embed(OPEN)])
    assert cache.purge_orphaned_collections() == [gone]
    assert vectors.collections() == sorted([kept, other])
    assert cache.lookup(PART, "how can I open an account") is not None


# ------------------------------------------------------------------ feedback and counters


def test_feedback_evicts_the_entry_that_answered(cache: SemanticCache) -> None:
    cache.store(PART, OPEN, "a wrong answer", request_id="r-store")
    assert cache.lookup(PART, "how can I open an account", request_id="r-hit") is not None
    assert cache.feedback(1, "r-hit", wrong=False) == 0
    assert cache.feedback(1, "r-hit") == 1
    assert cache.lookup(PART, OPEN) is None
    stats = cache.stats(1)
    assert stats.false_hits == 1 and stats.entries == 0


def test_feedback_on_the_original_answer_evicts_it_too(cache: SemanticCache) -> None:
    cache.store(PART, OPEN, "a wrong answer", request_id="r-store")
    assert cache.feedback(1, "r-store") == 1
    assert cache.lookup(PART, OPEN) is None


def test_stats_count_hits_and_what_they_saved(cache: SemanticCache) -> None:
    cache.store(PART, OPEN, "answer", tokens=100, cost_usd=0.01)
    cache.lookup(PART, OPEN)
    cache.lookup(PART, "how can I open an account")
    cache.lookup(PART, "What is the meaning of life?")
    stats = cache.stats(1)
    assert (stats.lookups, stats.exact_hits, stats.semantic_hits) == (3, 1, 1)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert stats.tokens_saved == 200 and stats.cost_saved_usd == pytest.approx(0.02)
    assert stats.by_deployment["support"]["stores"] == 1


def test_the_async_methods_run_the_same_calls(cache: SemanticCache) -> None:
    async def main() -> None:
        await cache.astore(PART, OPEN, "answer", request_id="r1")
        hit = await cache.alookup(PART, "how can I open an account", request_id="r2")
        assert hit is not None
        assert (await cache.astats(1)).semantic_hits == 1
        assert await cache.afeedback(1, "r2") == 1
        assert await cache.ainvalidate(1) == 0
        assert not await cache.aevict(hit.entry_id, project_id=1)

    asyncio.run(main())


def test_bad_settings_say_what_to_fix(embedder: Any) -> None:
    options: Any
    for options, field in [
        ({"threshold": 0}, "threshold"),
        ({"margin": -1}, "margin"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"max_entries": 0}, "max_entries"),
    ]:
        with pytest.raises(ValidationError) as caught:
            SemanticCache(InMemoryVectorStore(), embedder, **options)
        assert caught.value.field == field
    with pytest.raises(ValidationError, match="integer id"):
        Partition(project_id="1", deployment="x")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the verifier and calibration


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I open an account?", "how can I open an account"),
        (
            "Transformers supports PyTorch, TensorFlow, and JAX.",
            "PyTorch, TensorFlow and JAX work with Transformers.",
        ),
        ("What does NLP stand for?", "What does Natural Language Processing mean?"),
        ("The HuggingFace Hub hosts models.", "The Hugging Face Hub hosts models."),
        ("It costs 1,000 dollars.", "It costs $1000."),
        ("It costs 5k.", "It costs five thousand."),
        ("Fifty-seven senators signed.", "57 senators signed."),
        ("How do I use an IterableDataset?", "How do I use a Dataset that is Iterable?"),
    ],
)
def test_the_verifier_accepts_paraphrases(a: str, b: str) -> None:
    assert LexicalVerifier().reject(a, b) is None


def test_the_verifier_says_why_it_rejects() -> None:
    verifier = LexicalVerifier()
    assert verifier.reject("How do I open it?", "How do I close it?") == "antonym"
    assert verifier.reject("Is it free?", "Is it not free?") == "negation"
    assert verifier.reject("Version 2.10.0 notes", "Version 2.9.0 notes") == "numbers"
    assert verifier.reject("Flights to Paris", "Flights to Rome") == "names"
    assert LexicalVerifier(names=False).reject("Flights to Paris", "Flights to Rome") is None


def test_calibrate_picks_the_lowest_threshold_that_keeps_the_precision(tmp_path: Path) -> None:
    labels = [True, True, True, False, True, False]
    pairs = [LabelledPair(f"q{i}", f"c{i}", same) for i, same in enumerate(labels)]
    scores = [0.95, 0.9, 0.85, 0.8, 0.75, 0.6]
    result = calibrate(pairs, 0.99, scores=scores, verifier=None)
    assert result.threshold == 0.81
    assert result.chosen is not None and result.chosen.recall == pytest.approx(3 / 4)
    loose = calibrate(pairs, 0.75, scores=scores, verifier=None)
    assert loose.threshold is not None and loose.threshold <= 0.75
    assert calibrate(pairs, 1.0, scores=[0.9] * 6, verifier=None).threshold is None
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        '{"query": "a", "cached": "b", "label": 1}\n'
        '{"question1": "c", "question2": "d", "is_duplicate": "0"}\n'
        '{"origin": "e", "similar": "f"}\n'
    )
    assert [p.same for p in load_pairs(source)] == [True, False, True]
    source.write_text("not json\n")
    with pytest.raises(ValidationError, match=r"pairs\.jsonl:1"):
        load_pairs(source)


def test_calibrate_with_the_embedder(embedder: Any) -> None:
    premium = "What is the price of the premium plan?"
    pairs = [
        LabelledPair("how can I open an account", OPEN, True),
        LabelledPair("How do I close an account?", OPEN, False),
        LabelledPair("What does the premium plan cost?", premium, True),
        LabelledPair("What is the capital of France?", "How tall is Everest?", False),
    ]
    result = calibrate(pairs, 0.98, embedder=embedder)
    assert result.threshold is not None and result.rejected_by_verifier == 2  # antonym, names
    assert result.chosen is not None and result.chosen.false_hits == 0


class TestMemoryEntries(EntryStoreSuite):
    @pytest.fixture
    def entries(self) -> EntryStore:
        return MemoryEntries()
