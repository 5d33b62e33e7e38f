"""``extractive``: answers by quoting the context sentences closest to the question.

There are no weights and no sampling: the backend embeds the question and every sentence of
the context passages, keeps the ``top_k`` sentences whose cosine similarity reaches both
``min_similarity`` and ``min_relative_similarity`` times the best sentence's (at most
``max_sentences_per_passage`` from one passage), and quotes them in passage order, then
sentence order, each with its passage id: ``… under Settings > Accounts [doc-3].``

Passages come from ``request.context``, or from a ``<context>`` block in the last user
message (else in the system messages, or in a text prompt), one passage per ``[id] text``
line; the question is the last user message (or the prompt) without that block.

With ``tools`` it takes an agent's turns the same way, by similarity and quoting: it calls
the tool the question names, then answers by quoting what the tool returned
(:mod:`genai.models._extractive_tools`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from genai.errors import NotFoundError, ValidationError
from genai.models._embedders import BUNDLED_EMBEDDING_MODEL, SentenceTransformerEmbedder
from genai.models._extractive_tools import pick_call, render_results, tool_results
from genai.models._protocols import Embedder, refuse_unsupported
from genai.models._types import (
    ContextPassage,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    SamplingParams,
    ToolCall,
)
from genai.pool import offload

__all__ = [
    "NO_CONTEXT_ANSWER",
    "NO_MATCH_ANSWER",
    "ExtractiveBackend",
    "parse_context",
    "split_sentences",
]

MODEL_ID = "extractive"
NO_CONTEXT_ANSWER = (
    "I cannot answer without context passages: send them in the request's context, or in a "
    "<context> block of [id] text lines."
)
NO_MATCH_ANSWER = "The context passages do not contain the answer to this question."

# ---------------------------------------------------------------------- sentences

# Words after which a period never ends a sentence (lower case, without the final period).
_ABBREVIATIONS = frozenset(
    (
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "v",
        "e.g",
        "i.e",
        "cf",
        "viz",
        "al",
        "fig",
        "figs",
        "no",
        "nos",
        "vol",
        "approx",
        "ca",
        "incl",
        "excl",
        "esp",
        "resp",
        "dept",
        "est",
        "gen",
        "gov",
        "rev",
        "capt",
        "col",
        "lt",
        "sgt",
        "hon",
        "jan",
        "feb",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "p",
        "pp",
        "ed",
        "eds",
        "ref",
        "refs",
        "eq",
        "ch",
        "sec",
        "art",
    )
)
# Starts only where a run of punctuation starts, and never backtracks: linear on any input.
_TERMINATOR = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s+\S)")
_CLOSERS = "\"'”’)]"
_OPENERS = "\"'“‘([{"
_LIST_MARKER = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_DOTTED = re.compile(r"(?:[A-Za-z]\.){2,}")
_LIST_NUMBER = re.compile(r"\(?\d{1,3}\.")
_LIST_NUMBER_AFTER_COLON = re.compile(r"[:;] ?\(?\d{1,3}\.$")
_WINDOW = 40  # characters of the sentence so far that decide whether a period ends it


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace collapsed, in order.

    Blank lines, list items and Markdown headings always end a sentence (a heading is
    left out: a title is not an answer); ``.``, ``!``,
    ``?`` and ``…`` end one when whitespace and a word not starting in lower case follow,
    except after abbreviations (``e.g.``, ``Dr.``, ``Fig.``…), initials (``J. Smith``)
    and list numbers (``Steps: 1. Open``). Decimals, versions and URLs stay whole.
    """
    sentences: list[str] = []
    for block in _blocks(text):
        sentences.extend(_split_block(block))
    return sentences


def _blocks(text: str) -> list[str]:
    """Paragraphs, list items and headings: pieces no sentence crosses."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            blocks.append([])
        elif _HEADING.match(line):
            blocks.append([])  # a title is not an answer: never quoted
        elif _LIST_MARKER.match(line):
            blocks.append([_LIST_MARKER.sub("", line, count=1)])
        else:
            blocks[-1].append(line)
    joined = (" ".join(" ".join(lines).split()) for lines in blocks)
    return [block for block in joined if block]


def _split_block(block: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _TERMINATOR.finditer(block):
        end = match.end()
        head = block[max(start, end - _WINDOW) : end]
        if _ends_sentence(head, block[end : end + 8].lstrip(), at_start=end - _WINDOW <= start):
            sentences.append(block[start:end].strip())
            start = end
    rest = block[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _ends_sentence(head: str, following: str, *, at_start: bool) -> bool:
    """Whether the punctuation ending ``head`` (the tail of a sentence) ends the sentence."""
    first = following.lstrip(_OPENERS)[:1]
    if first.islower():
        return False
    stripped = head.rstrip(_CLOSERS).strip()
    if not stripped.endswith(".") or stripped.endswith(".."):
        return True  # ! ? … and ellipses
    word = stripped.rsplit(None, 1)[-1].lstrip(_OPENERS)
    if word[:-1].lower() in _ABBREVIATIONS:
        return False
    if len(word) == 2 and word[0].isupper():
        return False  # an initial: J. Smith
    if _DOTTED.fullmatch(word):
        return False  # U.S., a.m., p.m.: more often inside a sentence than at its end
    if at_start and _LIST_NUMBER.fullmatch(stripped):
        return False  # "2. Tap Settings"
    return _LIST_NUMBER_AFTER_COLON.search(stripped) is None  # "Steps: 1. Open"


# ---------------------------------------------------------------------- context

_OPEN_TAG = re.compile(r"<context>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</context>", re.IGNORECASE)
_PASSAGE_LINE = re.compile(r"^\s*\[([^\[\]\n]{1,200})\]\s?(.*)$")
_QUESTION_LABEL = re.compile(r"^[ \t]*(?:question|query)[ \t]*:", re.IGNORECASE | re.MULTILINE)
_ANSWER_LABEL = re.compile(r"\n[ \t]*answer[ \t]*:\s*$", re.IGNORECASE)


def parse_context(text: str) -> tuple[list[ContextPassage], str]:
    """The passages of the ``<context>`` blocks in ``text``, and ``text`` without them.

    Each ``[id] text`` line starts a passage; lines after it continue it. A block without
    such lines gives one passage per paragraph, numbered from 1.
    """
    outside: list[str] = []
    passages: list[ContextPassage] = []
    position = 0  # a scan with find, not a lazy regex: linear on unclosed tags too
    while (opening := _OPEN_TAG.search(text, position)) and (
        closing := _CLOSE_TAG.search(text, opening.end())
    ):
        outside.append(text[position : opening.start()])
        passages.extend(_block_passages(text[opening.end() : closing.start()]))
        position = closing.end()
    outside.append(text[position:])
    return passages, "\n\n".join(piece.strip() for piece in outside if piece.strip())


def _block_passages(block: str) -> list[ContextPassage]:
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        match = _PASSAGE_LINE.match(line)
        if match:
            found.append((match.group(1).strip(), [match.group(2)]))
        elif found:
            found[-1][1].append(line)
    if not found:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", block) if p.strip()]
        return [ContextPassage(id=str(i), text=p) for i, p in enumerate(paragraphs, 1)]
    return [ContextPassage(id=pid, text="\n".join(lines).strip()) for pid, lines in found]


def _question(text: str) -> str:
    """The question of a rendered prompt: after a ``Question:`` label if there is one."""
    labels = list(_QUESTION_LABEL.finditer(text))
    if labels:
        text = text[labels[-1].end() :]
    return _ANSWER_LABEL.sub("", text).strip()


def _passages_and_question(request: GenerationRequest) -> tuple[list[ContextPassage], str]:
    if request.messages is None:
        passages, rest = parse_context(request.prompt or "")
        return list(request.context or passages), _question(rest)
    users = [m for m in request.messages if m.role == "user"]
    passages, rest = parse_context(users[-1].text()) if users else ([], "")
    if not passages:
        for message in request.messages:
            if message.role in ("system", "developer"):
                passages.extend(parse_context(message.text())[0])
    return list(request.context or passages), _question(rest)


# ---------------------------------------------------------------------- answers


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[ToolCall] | None = None


class ExtractiveBackend:
    """Answers questions by quoting the most similar sentences of the given passages.

    Not a language model: it never generates text, so ``temperature``, ``top_p``, ``seed``
    and the penalties are accepted and ignored; ``response_format``, log-probabilities and
    token-id prompts are refused by name (a 400), never ignored. ``tools`` are called by
    similarity (see the module's docstring); ``min_tool_similarity`` is the cosine a tool's
    name and description must reach to be called unasked. It honours
    ``max_tokens`` (cut at a word boundary, ``finish_reason="length"``) and ``stop``.
    Tokens are counted with the embedder's tokenizer (or as words and punctuation for an
    embedder without ``count_tokens``). It has no adapters.

    ``min_similarity`` is an absolute cosine floor; ``min_relative_similarity`` drops
    sentences scoring below that fraction of the best one, so that a clear answer is not
    padded with loosely related sentences of other passages.
    """

    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        embedding_model: str = BUNDLED_EMBEDDING_MODEL,
        top_k: int = 3,
        min_similarity: float = 0.3,
        max_sentences_per_passage: int = 2,
        min_relative_similarity: float = 0.6,
        min_tool_similarity: float = 0.4,
    ) -> None:
        if top_k < 1:
            raise ValidationError(f"top_k must be at least 1, not {top_k}", field="top_k")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValidationError(
                f"min_similarity is a cosine similarity in [-1, 1], not {min_similarity}",
                field="min_similarity",
            )
        if not 0.0 <= min_relative_similarity <= 1.0:
            raise ValidationError(
                "min_relative_similarity is a fraction of the best score in "
                f"[0, 1], not {min_relative_similarity}",
                field="min_relative_similarity",
            )
        if not -1.0 <= min_tool_similarity <= 1.0:
            raise ValidationError(
                f"min_tool_similarity is a cosine similarity in [-1, 1], not {min_tool_similarity}",
                field="min_tool_similarity",
            )
        if max_sentences_per_passage < 1:
            raise ValidationError(
                "max_sentences_per_passage must be at least 1", field="max_sentences_per_passage"
            )
        self._embedder: Embedder = (
            embedder if embedder is not None else SentenceTransformerEmbedder(embedding_model)
        )
        self._top_k = top_k
        self._min_similarity = min_similarity
        self._per_passage = max_sentences_per_passage
        self._relative = min_relative_similarity
        self._min_tool = min_tool_similarity
        self._vectors: dict[str, Any] = {}  # tool descriptions' embeddings, by text

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def context_window(self) -> int | None:
        return None  # passages of any length are split into sentences

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    async def start(self) -> None:
        warm = getattr(self._embedder, "warm", None)
        if callable(warm):
            await asyncio.to_thread(warm)

    async def close(self) -> None:
        return None

    async def count_tokens(self, request: GenerationRequest) -> int:
        return await asyncio.to_thread(self._prompt_tokens, request)

    async def generate(self, request: GenerationRequest) -> Generation:
        _refuse(request)
        answer = await offload(self._answer, request)  # a gateway's fair pool, if bound
        return Generation(
            text=answer.text,
            finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            tool_calls=answer.tool_calls,
        )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        _refuse(request)
        answer = await offload(self._answer, request)
        for word in re.findall(r"\s*\S+|\s+", answer.text):
            yield GenerationChunk(text=word)
        yield GenerationChunk(
            finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            tool_calls=answer.tool_calls,
        )

    # ------------------------------------------------------------ adapters

    def adapters(self) -> list[LoadedAdapter]:
        return []

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        raise ValidationError(
            f"cannot load adapter {name!r}: the extractive backend has no weights to adapt; "
            "serve the adapter's base model with the transformers or vllm backend",
            field="lora_name",
        )

    async def unload_adapter(self, name: str) -> None:
        raise ValidationError(
            f"cannot unload adapter {name!r}: the extractive backend has no weights to adapt",
            field="lora_name",
        )

    # ------------------------------------------------------------ answering (in a thread)

    def _answer(self, request: GenerationRequest) -> _Answer:
        if request.adapter is not None and request.adapter != MODEL_ID:
            raise NotFoundError(f"the model {request.adapter!r} does not exist")
        passages, question = _passages_and_question(request)
        if not question:
            raise ValidationError(
                "the extractive backend needs a question: the last user message (or the "
                "prompt) has no text outside its <context> block",
                field="messages",
            )
        results = tool_results(request.messages or [])
        if results:
            text = render_results(results, lambda found: self._quote(found, question))
        else:
            call = self._call(request, question)
            if call is not None:
                arguments = str(call.function["arguments"])
                return _Answer(
                    "", "tool_calls", self._prompt_tokens(request), self._count(arguments), [call]
                )
            text = self._quote(passages, question) if passages else self._no_context(request)
        text, finish = self._limit(text, request.params)
        return _Answer(text, finish, self._prompt_tokens(request), self._count(text))

    def _call(self, request: GenerationRequest, question: str) -> ToolCall | None:
        if not request.tools or request.tool_choice == "none":
            return None
        choice, similar = request.tool_choice, self._similar
        return pick_call(question, request.tools, choice, similar, min_similarity=self._min_tool)

    def _similar(self, question: str, texts: Sequence[str]) -> list[float]:
        """Cosine similarities of ``question`` to each text (texts' vectors kept: tool
        descriptions come again with every request of an agent)."""
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        vectors = np.asarray(self._embedder.embed([question, *missing]), dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if len(self._vectors) + len(missing) > 512:
            self._vectors.clear()  # bounded: many agents' tools, rarely
        self._vectors.update(zip(missing, vectors[1:], strict=True))
        return [float(self._vectors[t] @ vectors[0]) for t in texts]

    @staticmethod
    def _no_context(request: GenerationRequest) -> str:
        if request.tools and request.tool_choice != "none":
            names = ", ".join(str(t.get("function", t).get("name")) for t in request.tools)
            return f"None of my tools ({names}) answers this question."
        return NO_CONTEXT_ANSWER

    def _quote(self, passages: Sequence[ContextPassage], question: str) -> str:
        import numpy as np

        sentences = [
            (p, s, sentence)
            for p, passage in enumerate(passages)
            for s, sentence in enumerate(split_sentences(passage.text))
            if len(sentence.split()) >= 2
        ]
        if not sentences:
            return NO_MATCH_ANSWER
        vectors = np.asarray(
            self._embedder.embed([question] + [t for _, _, t in sentences]), dtype=np.float32
        )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
        scores = vectors[1:] @ vectors[0]
        picked = self._pick([(float(scores[i]), *sentences[i]) for i in range(len(sentences))])
        if not picked:
            return NO_MATCH_ANSWER
        return " ".join(_cite(text, passages[p].id) for p, _, text in sorted(picked))

    def _pick(self, scored: list[tuple[float, int, int, str]]) -> list[tuple[int, int, str]]:
        """The best sentences above the thresholds: ``top_k`` in all, few per passage."""
        picked: list[tuple[int, int, str]] = []
        per_passage: dict[int, int] = {}
        seen: set[str] = set()
        ranked = sorted(scored, key=lambda item: -item[0])
        floor = max(self._min_similarity, ranked[0][0] * self._relative)
        for score, p, s, text in ranked:
            if score < floor or len(picked) == self._top_k:
                break
            key = " ".join(text.lower().split())
            if key in seen or per_passage.get(p, 0) == self._per_passage:
                continue
            seen.add(key)
            per_passage[p] = per_passage.get(p, 0) + 1
            picked.append((p, s, text))
        return picked

    def _limit(self, text: str, params: SamplingParams) -> tuple[str, FinishReason]:
        """Cut at the first stop sequence, then to ``max_tokens`` at a word boundary."""
        cuts = [i for i in (text.find(stop) for stop in params.stop if stop) if i >= 0]
        if cuts:
            text = text[: min(cuts)]
        if params.max_tokens is None or self._count(text) <= params.max_tokens:
            return text, "stop"
        words = re.findall(r"\s*\S+", text)
        low, high = 0, len(words)  # the longest prefix of words within max_tokens
        while low < high:
            middle = (low + high + 1) // 2
            if self._count("".join(words[:middle])) <= params.max_tokens:
                low = middle
            else:
                high = middle - 1
        return "".join(words[:low]).strip(), "length"

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        if request.messages is None:
            parts = [request.prompt or ""]
        else:
            parts = [message.text() for message in request.messages]
        parts.extend(f"[{p.id}] {p.text}" for p in request.context or [])
        return self._count("\n".join(parts))

    def _count(self, text: str) -> int:
        if not text:
            return 0
        count_tokens: Any = getattr(self._embedder, "count_tokens", None)
        if callable(count_tokens):
            return int(count_tokens(text))
        return len(re.findall(r"\w+|[^\w\s]", text))


def _cite(sentence: str, passage_id: str) -> str:
    """``sentence`` with ``[passage_id]`` before its final punctuation."""
    last = sentence.rsplit(None, 1)[-1]
    if sentence.endswith(tuple(_CLOSERS)) or _DOTTED.fullmatch(last):
        return f"{sentence} [{passage_id}]"  # He said "Go." [id], until 5 p.m. [id]
    body = sentence.rstrip(".!?…")
    return f"{body} [{passage_id}]{sentence[len(body) :] or '.'}"


def _refuse(request: GenerationRequest) -> None:
    refuse_unsupported(
        request,
        backend="extractive",
        supports=("tools",),
        hint="it quotes context passages; send this request to a model deployment "
        "(transformers, vLLM or an OpenAI-compatible upstream)",
    )
