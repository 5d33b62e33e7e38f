"""The splitter: exact slices, token budgets in the model's tokenizer, structure first,
overlap, Markdown headings. No model weights are loaded (the tokenizer file only)."""

from __future__ import annotations

import itertools
import random

import pytest

from genai.errors import ValidationError
from rag import Document, SplitterConfig, TextSplitter, TokenCounter, markdown_sections


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("all-MiniLM-L6-v2")


def _words(rng: random.Random, n: int) -> str:
    vocab = ["alpha", "beta", "gamma", "delta", "refund", "invoice", "Zürich", "naïve", "x2"]
    return " ".join(rng.choice(vocab) for _ in range(n))


def _prose(seed: int, paragraphs: int = 12) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = [_words(rng, rng.randint(4, 30)).capitalize() + "." for _ in range(4)]
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def test_counts_are_the_embedding_models_tokens(counter: TokenCounter) -> None:
    from tokenizers import BertWordPieceTokenizer

    from rag._tokens import model_directory

    # built independently from the model's vocabulary (what BertTokenizer does)
    vocab = model_directory("all-MiniLM-L6-v2") / "vocab.txt"
    reference = BertWordPieceTokenizer(str(vocab), lowercase=True)
    for text in ["Refunds take 5-7 days.", "naïve café Zürich 😀 x2", _prose(3, 2)]:
        expected = len(reference.encode(text, add_special_tokens=False).ids)
        assert counter.count(text) == expected
    assert counter.exact and counter.max_seq_length == 256


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("size", "overlap"), [(32, 0), (64, 8), (128, 24)])
def test_chunks_are_exact_slices_within_budget(
    counter: TokenCounter, seed: int, size: int, overlap: int
) -> None:
    text = _prose(seed)
    splitter = TextSplitter(SplitterConfig(chunk_size=size, chunk_overlap=overlap), counter)
    drafts = splitter.split(Document(text=text, source="s"))
    assert drafts
    for draft in drafts:
        assert text[draft.start : draft.end] == draft.text
        assert counter.count(draft.text) <= size
    # everything is covered, in order
    assert drafts[0].start == 0 and drafts[-1].end == len(text.rstrip())
    for before, after in itertools.pairwise(drafts):
        assert after.start > before.start
        assert after.start <= before.end + 2  # no gap but the whitespace between pieces
        if overlap:
            shared = (
                counter.count(text[after.start : before.end]) if after.start < before.end else 0
            )
            assert shared <= overlap


def test_chunks_end_at_paragraphs_when_they_fit(counter: TokenCounter) -> None:
    paragraphs = [f"Paragraph {i} says something short about topic {i}." for i in range(12)]
    text = "\n\n".join(paragraphs)
    splitter = TextSplitter(SplitterConfig(chunk_size=40, chunk_overlap=0), counter)
    for draft in splitter.split(Document(text=text, source="s")):
        assert draft.text.startswith("Paragraph") and draft.text.endswith(".")
        assert all(p in paragraphs for p in draft.text.split("\n\n"))


def test_long_paragraph_is_cut_at_sentences_then_words(counter: TokenCounter) -> None:
    sentence = "The invoice service retries failed payments three times."
    text = " ".join([sentence] * 30)
    splitter = TextSplitter(SplitterConfig(chunk_size=30, chunk_overlap=0), counter)
    drafts = splitter.split(Document(text=text, source="s"))
    assert len(drafts) > 5
    assert all(d.text.endswith(".") for d in drafts)
    words = "word " * 200
    cut = splitter.split(Document(text=words, source="s"))
    assert all(counter.count(d.text) <= 30 for d in cut)


def test_text_without_whitespace_is_cut_between_tokens(counter: TokenCounter) -> None:
    text = "-".join(["segment"] * 300)  # one "word" of ~600 tokens
    splitter = TextSplitter(SplitterConfig(chunk_size=50, chunk_overlap=0), counter)
    drafts = splitter.split(Document(text=text, source="s"))
    assert len(drafts) >= 10
    assert all(counter.count(d.text) <= 50 for d in drafts)
    assert "".join(d.text for d in drafts) == text


def test_overlap_repeats_the_end_of_the_previous_chunk(counter: TokenCounter) -> None:
    text = " ".join(f"Sentence {i} is about item {i}." for i in range(60))
    splitter = TextSplitter(SplitterConfig(chunk_size=40, chunk_overlap=12), counter)
    drafts = splitter.split(Document(text=text, source="s"))
    repeated = [a for a, b in itertools.pairwise(drafts) if b.start < a.end]
    assert len(repeated) >= len(drafts) - 2
    for _a, b in itertools.pairwise(drafts):
        assert b.text.startswith("Sentence")  # the overlap starts at a sentence


MARKDOWN = """Intro before any heading.

# Guide

Welcome text.

## Install

Run the installer.

```bash
# not a heading: a shell comment
pip install thing
```

### Linux

Use apt.

## Empty
## Use

Use it well.
"""


def test_markdown_sections_follow_headings_outside_code() -> None:
    sections = markdown_sections(MARKDOWN)
    paths = [path for path, _, _ in sections]
    assert paths == [
        (),
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Use"),
    ]
    install = next(MARKDOWN[a:b] for p, a, b in sections if p == ("Guide", "Install"))
    assert "# not a heading" in install and "Use apt" not in install


def test_markdown_chunks_carry_heading_paths_and_never_cross_headings(
    counter: TokenCounter,
) -> None:
    splitter = TextSplitter(SplitterConfig(chunk_size=64, chunk_overlap=8), counter)
    drafts = splitter.split(Document(text=MARKDOWN, source="g.md", markdown=True))
    by_path = {d.heading_path: d.text for d in drafts}
    assert by_path[("Guide", "Install", "Linux")].endswith("Use apt.")
    assert "Use apt" not in by_path[("Guide", "Install")]
    plain = TextSplitter(SplitterConfig(markdown_headings=False), counter)
    assert {d.heading_path for d in plain.split(Document(text=MARKDOWN, source="g.md"))} == {()}


def test_the_contextual_header_counts_against_the_chunk_size(counter: TokenCounter) -> None:
    from rag._splitters import header_text

    title = "A rather long title about invoices, refunds and the payment schedule"
    doc = Document(
        text=MARKDOWN + "\n## Long\n\n" + _prose(2), source="g.md", title=title, markdown=True
    )
    config = SplitterConfig(chunk_size=48, chunk_overlap=8)
    for draft in TextSplitter(config, counter).split(doc):
        embedded = header_text(title, draft.heading_path, draft.text)
        assert counter.count(embedded) <= 48
    bare = TextSplitter(config.model_copy(update={"contextual_header": False}), counter)
    assert max(counter.count(d.text) for d in bare.split(doc)) > 40  # the whole budget


def test_blank_documents_give_no_chunks(counter: TokenCounter) -> None:
    splitter = TextSplitter(SplitterConfig(), counter)
    assert splitter.split(Document(text=" \n\n\t ", source="s")) == []


def test_sizes_are_checked_against_the_model_window(counter: TokenCounter) -> None:
    with pytest.raises(ValidationError, match="window of 256 tokens"):
        TextSplitter(SplitterConfig(chunk_size=255), counter)
    TextSplitter(SplitterConfig(chunk_size=254), counter)
    with pytest.raises(ValidationError, match="chunk_overlap"):
        TextSplitter(SplitterConfig(chunk_size=64, chunk_overlap=64), counter)


def test_a_model_without_tokenizer_file_gets_an_approximate_count(tmp_path: object) -> None:
    approx = TokenCounter(None)
    assert not approx.exact
    assert approx.count("Hello, world!") == 4  # Hello , world !
    splitter = TextSplitter(SplitterConfig(chunk_size=16, chunk_overlap=0), approx)
    drafts = splitter.split(Document(text=_prose(1, 3), source="s"))
    assert all(approx.count(d.text) <= 16 for d in drafts)
