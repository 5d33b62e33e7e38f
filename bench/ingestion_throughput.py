"""Ingestion throughput: chunks/s end to end (load → split → embed → index).

    .venv/bin/python bench/ingestion_throughput.py [--docs 300] [--rounds 2]

The corpus is the first ``--docs`` SciFact abstracts written as one Markdown file each
(``# title`` + abstract) into a temporary folder. Three setups embed with the same
all-MiniLM-L6-v2 (the bundled copy, sentence-transformers, fp32, PyTorch's default of
one thread per core), loaded before the clock starts:

- **raw encoder** — ``SentenceTransformer.encode`` on exactly the texts our pipeline
  embeds (title header + chunk), in one call, batch 16 (as ours): the ceiling here;
- **genai** — ``kb.ingest([folder])`` into a fresh knowledge base (SQLite, embedded
  Chroma): hashing, loading, splitting, embedding, Chroma writes, per-file records, the
  BM25 rebuild and the registry dataset version — the whole call;
- **LlamaIndex** — ``SimpleDirectoryReader(folder).load_data()`` then an
  ``IngestionPipeline`` of ``SentenceSplitter(chunk_size=200, chunk_overlap=32)`` (with the
  model's own tokenizer: LlamaIndex's default, tiktoken, downloads) and
  ``HuggingFaceEmbedding`` (its default batch of 10; one extra run with our 16) into a
  ``ChromaVectorStore`` — the whole run.

Each setup counts its own chunks (LlamaIndex's splitter, which also embeds file metadata,
makes a different number). Rounds run the three setups back to back, so a ratio is taken
within one round, and the median of rounds is reported: other processes on a shared
machine move absolute figures a lot. Needs ``llama-index-vector-stores-chroma`` and
``llama-index-embeddings-huggingface`` (they install into the main venv without changing
any pin: ``pip install -c constraints.txt llama-index-vector-stores-chroma
llama-index-embeddings-huggingface``).

Writes bench/results/ingestion_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "retrieval" / "scifact"
RESULTS = ROOT / "bench" / "results"
CHUNK_SIZE, OVERLAP = 200, 32
BATCH = 16  # what KnowledgeBases' own embedder uses (rag._kb.EMBED_BATCH)


def make_corpus(folder: Path, count: int, data: Path) -> int:
    folder.mkdir(parents=True)
    with open(data / "corpus.jsonl", encoding="utf-8") as fh:
        for number, line in enumerate(fh):
            if number == count:
                break
            row = json.loads(line)
            (folder / f"{row['_id']}.md").write_text(
                f"# {row['title']}\n\n{row['text']}\n", encoding="utf-8"
            )
    return min(count, number + 1)


def run_genai(folder: Path, work: Path, embedder: Any) -> dict[str, Any]:
    import genai
    from rag import KnowledgeBases, SplitterConfig

    settings = genai.Settings(home=work / "genai-home", user="bench")
    genai.init(settings, admin="bench")
    with genai.connect(settings) as client:
        client.projects.create("bench")
        kbs = KnowledgeBases(client, embedder=embedder)
        kb = kbs.create(
            "bench", "corpus", splitter=SplitterConfig(chunk_size=CHUNK_SIZE, chunk_overlap=OVERLAP)
        )
        kbs.chroma()  # open the Chroma client before the clock starts, as a service would
        started = time.perf_counter()
        report = kb.ingest([folder])
        seconds = time.perf_counter() - started
        texts = embedded_texts(kbs)
    return {"chunks": report.chunks_written, "seconds": seconds, "texts_embedded": len(texts)}


def embedded_texts(kbs: Any) -> list[str]:
    """What the pipeline embedded: header + body of every chunk, read back from Chroma."""
    from genai.tenancy import Action
    from rag._chroma import ChunkStore
    from rag._ingest import header_text

    snap = kbs.snapshot("bench", "corpus", Action.REGISTRY_READ)
    store = ChunkStore(kbs.chroma(), snap.collection)
    texts = []
    for _, bodies, metas in store.scan():
        for body, meta in zip(bodies, metas, strict=True):
            path = json.loads(str(meta.get("heading_json") or "[]"))
            texts.append(header_text(str(meta.get("title", "")), path, body))
    return texts


def edit_files(folder: Path, share: float) -> int:
    """Append a sentence to every ``1/share``-th file (an edit of part of the corpus)."""
    files = sorted(folder.glob("*.md"))
    step = max(1, round(1 / share))
    for path in files[::step]:
        path.write_text(path.read_text(encoding="utf-8") + "\nThis abstract was revised.\n")
    return len(files[::step])


def resync_genai(folder: Path, work: Path, embedder: Any) -> dict[str, Any]:
    """Re-ingest the edited folder into the knowledge base of :func:`run_genai`."""
    import genai
    from rag import KnowledgeBases

    settings = genai.Settings(home=work / "genai-home", user="bench")
    with genai.connect(settings) as client:
        kbs = KnowledgeBases(client, embedder=embedder)
        kb = kbs.get("bench", "corpus")
        started = time.perf_counter()
        report = kb.ingest([folder])
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "embedded": report.chunks_embedded,
            "written": report.chunks_written,
            "updated": len(report.updated),
            "unchanged": len(report.unchanged),
            "chunks_after": kb.info.chunks,
        }


def run_raw(model: Any, texts: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    return {"chunks": len(texts), "seconds": time.perf_counter() - started}


def run_llamaindex(
    folder: Path, work: Path, model_dir: Path, batch: int | None = None
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    options = {} if batch is None else {"embed_batch_size": batch}  # default: 10
    embed = HuggingFaceEmbedding(model_name=str(model_dir), device="cpu", **options)
    client = chromadb.PersistentClient(
        path=str(work / "li-chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.get_or_create_collection(
        f"llamaindex-{batch or 'default'}",
        configuration={"hnsw": {"space": "cosine"}},
        embedding_function=None,
    )
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(folder)).load_data()
    pipeline = IngestionPipeline(
        transformations=[
            SentenceSplitter(
                chunk_size=CHUNK_SIZE,
                chunk_overlap=OVERLAP,
                tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
            ),
            embed,
        ],
        vector_store=ChromaVectorStore(chroma_collection=collection),
    )
    nodes = pipeline.run(documents=documents)
    seconds = time.perf_counter() - started
    return {"chunks": len(nodes), "seconds": seconds, "collection_after": collection.count()}


def split_only(folder: Path) -> dict[str, Any]:
    """Our load + split alone (no embedding): shows it is not what limits ingestion. Its
    texts are exactly what ``kb.ingest`` embeds (title header + chunk), for the raw run."""
    from rag import SplitterConfig, TextSplitter, TokenCounter, collect_files
    from rag._ingest import file_sources, prepare

    splitter = TextSplitter(
        SplitterConfig(chunk_size=CHUNK_SIZE, chunk_overlap=OVERLAP),
        TokenCounter("all-MiniLM-L6-v2"),
    )
    started = time.perf_counter()
    files, _ = collect_files([folder])
    texts = [t for s in file_sources(files, None) for t in prepare(s, splitter, None, True).texts]
    return {"chunks": len(texts), "seconds": time.perf_counter() - started, "texts": texts}


def thread_check(model: Any, texts: list[str]) -> dict[str, float]:
    """Raw encoder chunks/s with one thread and with PyTorch's default (one per core)."""
    import torch

    default = torch.get_num_threads()
    out = {}
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        out[f"{threads} thread{'s' if threads > 1 else ''}"] = round(
            len(texts) / run_raw(model, texts)["seconds"], 2
        )
    torch.set_num_threads(default)
    return out


def rate(run: dict[str, Any]) -> float:
    return float(run["chunks"]) / float(run["seconds"])


def markdown(result: dict[str, Any]) -> str:
    med = result["median_chunks_per_s"]
    lines = [
        "| setup | chunks | chunks/s, median of rounds | best round | each round |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("raw", "raw encoder (sentence-transformers encode, same texts)"),
        ("genai", "**genai `kb.ingest`** (load → split → embed → Chroma → BM25 → registry)"),
        ("llamaindex", "LlamaIndex IngestionPipeline → Chroma (defaults, batch 10)"),
        ("llamaindex_batch16", "LlamaIndex, embed_batch_size=16 (last round only)"),
    ):
        runs = [r for r in result["rounds"] if key in r]
        if key not in med:
            continue
        lines.append(
            f"| {label} | {runs[0][key]['chunks']} | {med[key]:.2f} | "
            f"{result['best_chunks_per_s'][key]:.2f} | "
            + ", ".join(f"{rate(r[key]):.2f}" for r in runs)
            + " |"
        )
    ratios = result["ratios"]
    lines += [
        "",
        f"Goal 1, ≥ 0.8× the raw encoder: genai / raw = {ratios['genai_vs_raw']:.2f}× "
        f"({'met' if ratios['genai_vs_raw'] >= 0.8 else 'NOT met'}; per round "
        f"{', '.join(f'{r:.2f}' for r in ratios['genai_vs_raw_rounds'])}; best round against "
        f"best round {ratios['best_genai_vs_raw']:.2f}).",
        f"Goal 2, ≥ 2× LlamaIndex: genai / LlamaIndex = {ratios['genai_vs_llamaindex']:.2f}× "
        f"({'met' if ratios['genai_vs_llamaindex'] >= 2 else 'NOT met'}; per round "
        f"{', '.join(f'{r:.2f}' for r in ratios['genai_vs_llamaindex_rounds'])}; best round "
        f"against best round {ratios['best_genai_vs_llamaindex']:.2f}).",
        "",
        resync_line(result["resync"], result["docs"]),
        "",
        f"Our load + split alone: {result['split_only_chunks_per_s']:.0f} chunks/s. "
        f"Raw encoder by PyTorch threads: {result['threads']}.",
        f"Corpus: {result['docs']} SciFact abstracts, one Markdown file each; chunk_size "
        f"{CHUNK_SIZE}, overlap {OVERLAP} tokens; embedding batch {BATCH}.",
        f"Machine: {result['machine']}.",
        f"Command: `{result['command']}`",
    ]
    return "\n".join(lines) + "\n"


def resync_line(resync: dict[str, Any], docs: int) -> str:
    ours = resync["genai"]
    text = (
        f"Re-sync after editing {resync['files_edited']} of {docs} files: genai "
        f"{ours['seconds']:.1f} s ({ours['updated']} updated, {ours['unchanged']} unchanged, "
        f"{ours['embedded']} of {ours['written']} rewritten chunks embedded, the others' "
        f"vectors reused; {ours['chunks_after']} chunks in the index after)"
    )
    li = resync.get("llamaindex")
    if li:
        text += (
            f"; LlamaIndex's default pipeline (no docstore) {li['seconds']:.1f} s, embedding "
            f"all {li['chunks']} chunks again, and its Chroma collection holds "
            f"{li['collection_after']} vectors after it (every chunk twice)"
        )
    return text + "."


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-llamaindex", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from genai.models import SentenceTransformerEmbedder
    from rag._tokens import model_directory

    embedder = SentenceTransformerEmbedder(batch_size=BATCH)
    embedder.warm()
    model = embedder._require_model()
    model_dir = model_directory("all-MiniLM-L6-v2")
    base = Path(tempfile.mkdtemp(prefix="genai-ingest-bench-"))
    rounds: list[dict[str, Any]] = []
    resync: dict[str, Any] = {}
    setups = ["genai", "raw"] + ([] if args.no_llamaindex else ["llamaindex"])
    try:
        folder = base / "corpus"
        docs = make_corpus(folder, args.docs, args.data)
        split = split_only(folder)
        texts = split.pop("texts")
        print(f"{docs} files; load + split alone: {rate(split):.0f} chunks/s", flush=True)
        for number in range(args.rounds):
            work = base / f"round{number}"
            work.mkdir()
            row: dict[str, Any] = {}
            order = setups[number % len(setups) :] + setups[: number % len(setups)]
            for setup in order:  # rotated, so no setup always runs first or last
                load = os.getloadavg()[0]
                if setup == "genai":
                    row[setup] = run_genai(folder, work, embedder)
                elif setup == "raw":
                    row[setup] = run_raw(model, texts)
                else:
                    row[setup] = run_llamaindex(folder, work, model_dir)
                row[setup]["load_before"] = round(load, 2)
            if number == args.rounds - 1 and not args.no_llamaindex:
                # once: LlamaIndex with our batch size instead of its default 10
                row["llamaindex_batch16"] = run_llamaindex(folder, work, model_dir, BATCH)
            rounds.append(row)
            print(
                f"round {number + 1}: "
                + ", ".join(f"{k} {rate(v):.2f} chunks/s ({v['chunks']})" for k, v in row.items()),
                flush=True,
            )
        # re-sync after editing 10% of the files, into round 1's knowledge base and collection
        edited = edit_files(folder, 0.1)
        resync = {"files_edited": edited, "genai": resync_genai(folder, base / "round0", embedder)}
        if not args.no_llamaindex:  # a new pipeline, as a new process would run it
            resync["llamaindex"] = run_llamaindex(folder, base / "round0", model_dir)
        threads = thread_check(model, texts[:128])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    keys = [k for k in ("raw", "genai", "llamaindex") if k in rounds[0]]
    keys += [k for k in ("llamaindex_batch16",) if k in rounds[-1]]
    med = {k: statistics.median(rate(r[k]) for r in rounds if k in r) for k in keys}
    best = {k: max(rate(r[k]) for r in rounds if k in r) for k in keys}
    vs_raw = [rate(r["genai"]) / rate(r["raw"]) for r in rounds]
    vs_li = [rate(r["genai"]) / rate(r["llamaindex"]) for r in rounds if "llamaindex" in r]
    result = {
        "docs": docs,
        "rounds": rounds,
        "median_chunks_per_s": med,
        "best_chunks_per_s": best,
        "ratios": {
            "genai_vs_raw": statistics.median(vs_raw),
            "genai_vs_raw_rounds": vs_raw,
            "genai_vs_llamaindex": statistics.median(vs_li) if vs_li else 0.0,
            "genai_vs_llamaindex_rounds": vs_li,
            "best_genai_vs_raw": best["genai"] / best["raw"],
            "best_genai_vs_llamaindex": best["genai"] / best["llamaindex"] if vs_li else 0.0,
        },
        "split_only_chunks_per_s": rate(split),
        "resync": resync,
        "threads": threads,
        "machine": f"{os.cpu_count()} CPUs shared with other work, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "command": "python bench/ingestion_throughput.py " + " ".join(argv or sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingestion_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result) if "llamaindex" in rounds[0] else json.dumps(result, indent=2)
    (RESULTS / "ingestion_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
