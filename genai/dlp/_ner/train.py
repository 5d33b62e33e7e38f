"""Train the bundled PII NER model from the synthetic corpus (reproducible, CPU, minutes).

The model is a small spaCy pipeline (hash embeddings of NORM/PREFIX/SUFFIX/SHAPE, a
4-layer CNN and a transition-based NER) trained on :mod:`.synth` data only, so nothing
is downloaded and nothing from an evaluation set leaks in. Rebuild the shipped model::

    python -m genai.dlp._ner.train --out genai/dlp/_ner/model

Same seed, same Faker and spaCy versions -> the same weights (the command re-runs itself
with ``PYTHONHASHSEED=0`` because some Faker word lists are sets). About 6 CPU-minutes
on one core (10 minutes of wall time on a busy 2-core machine). ``training.json`` records
the options, corpus size, versions, the scores on a held-out synthetic dev set and a
calibration table (precision per label, case and length of span) that the Detector
reports as the NER findings' scores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import LABELS, span_bin

DEFAULTS: dict[str, Any] = {
    "seed": 7,
    "n_train": 28_000,
    "n_dev": 2_000,
    "epochs": 5,
    "width": 64,
    "depth": 4,
    "rows": [5000, 1000, 2500, 2500],
    "hidden": 64,
    "dropout": 0.15,
}


def model_config(width: int, depth: int, rows: Sequence[int], hidden: int) -> dict[str, Any]:
    """The NER's thinc architecture: its own tok2vec, no static vectors (nothing to ship)."""
    return {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": hidden,
        "maxout_pieces": 2,
        "use_upper": True,
        "nO": None,
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {
                "@architectures": "spacy.MultiHashEmbed.v2",
                "width": width,
                "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                "rows": list(rows),
                "include_static_vectors": False,
            },
            "encode": {
                "@architectures": "spacy.MaxoutWindowEncoder.v2",
                "width": width,
                "depth": depth,
                "window_size": 1,
                "maxout_pieces": 3,
            },
        },
    }


def _examples(nlp: Any, data: Sequence[Any], labels: frozenset[str]) -> tuple[list[Any], int]:
    """spaCy Examples; texts whose spans do not fall on token boundaries are dropped."""
    from spacy.training import Example

    out, dropped = [], 0
    for item in data:
        doc = nlp.make_doc(item.text)
        spans = [(s, e, label) for s, e, label in item.spans if label in labels]
        if any(doc.char_span(s, e) is None for s, e, _ in spans):
            dropped += 1
            continue
        out.append(Example.from_dict(doc, {"entities": spans}))
    return out, dropped


def train(out: Path, **options: Any) -> dict[str, Any]:
    """Generate, train, evaluate and write the pipeline to ``out``; returns its meta."""
    import spacy
    from spacy.util import fix_random_seed, minibatch  # type: ignore[attr-defined]

    from .synth import generate

    opts = DEFAULTS | {k: v for k, v in options.items() if v is not None}
    labels = frozenset(opts.get("labels") or LABELS)
    started = time.perf_counter()
    fix_random_seed(opts["seed"])
    rng = random.Random(opts["seed"])

    nlp = spacy.blank("en")
    config = model_config(opts["width"], opts["depth"], opts["rows"], opts["hidden"])
    ner = nlp.add_pipe("ner", config={"model": config})
    for label in sorted(labels):
        ner.add_label(label)  # type: ignore[attr-defined]

    train_set, dropped = _examples(nlp, generate(opts["n_train"], seed=opts["seed"]), labels)
    dev_set, _ = _examples(nlp, generate(opts["n_dev"], seed=opts["seed"] + 1), labels)
    print(f"corpus: {len(train_set)} train ({dropped} misaligned dropped), {len(dev_set)} dev")

    optimizer = nlp.initialize(lambda: train_set[:2000])
    for epoch in range(opts["epochs"]):
        rng.shuffle(train_set)
        losses: dict[str, float] = {}
        for batch in minibatch(train_set, size=32):  # type: ignore[no-untyped-call]
            nlp.update(batch, drop=opts["dropout"], sgd=optimizer, losses=losses)
        scores = nlp.evaluate(dev_set)
        print(
            f"epoch {epoch + 1}: loss {losses['ner']:.0f}, dev P/R/F "
            f"{scores['ents_p']:.3f}/{scores['ents_r']:.3f}/{scores['ents_f']:.3f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )

    scores = nlp.evaluate(dev_set)
    meta = _meta(opts, labels, len(train_set), scores, time.perf_counter() - started)
    meta["calibration"] = calibrate(nlp, dev_set)
    nlp.meta.update(
        {
            "name": "genai_pii_ner",
            "version": "1.0.0",
            "spacy_version": f">={spacy.__version__.rsplit('.', 1)[0]}.0,<3.9.0",  # type: ignore[attr-defined]
            "description": "PII NER of genai-platform, trained on synthetic data only",
            "license": "Apache-2.0",
        }
    )
    if out.exists():
        shutil.rmtree(out)
    nlp.to_disk(out)
    _prune_strings(out, labels)
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _prune_strings(out: Path, labels: frozenset[str]) -> None:
    """Drop the training texts' words from the saved string store (1.5 MB of Faker names).

    The model embeds tokens by hashes computed at run time; it needs only the blank
    language's strings and its labels, so predictions are unchanged.
    """
    import spacy

    keep = set(spacy.blank("en").vocab.strings) | labels
    (out / "vocab" / "strings.json").write_text(json.dumps(sorted(keep)))


def calibrate(nlp: Any, dev_set: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Precision of predicted spans per label and :func:`span_bin` on the dev set.

    Exact span and label match counts as correct; add-one smoothing keeps small bins
    from claiming certainty. :mod:`genai.dlp._detect` reports these as finding scores.
    """
    hits: dict[tuple[str, str], list[int]] = {}
    docs = nlp.pipe([eg.reference.text for eg in dev_set], batch_size=128)
    for eg, doc in zip(dev_set, docs, strict=True):
        gold = {(e.start_char, e.end_char, e.label_) for e in eg.reference.ents}
        for ent in doc.ents:
            key = (ent.label_, span_bin(ent.text, len(ent)))
            counts = hits.setdefault(key, [0, 0])
            counts[0] += (ent.start_char, ent.end_char, ent.label_) in gold
            counts[1] += 1
    out: dict[str, dict[str, float]] = {}
    for (label, bin_), (right, total) in sorted(hits.items()):
        out.setdefault(label, {})[bin_] = round((right + 1) / (total + 2), 4)
    return out


def _meta(
    opts: dict[str, Any], labels: frozenset[str], n_train: int, scores: dict[str, Any], took: float
) -> dict[str, Any]:
    import faker
    import spacy

    per_type = {
        label: {k: round(v, 4) for k, v in values.items()}
        for label, values in (scores.get("ents_per_type") or {}).items()
    }
    return {
        "labels": sorted(labels),
        "options": {k: v for k, v in opts.items() if k != "labels"},
        "n_train_examples": n_train,
        "train_seconds": round(took, 1),
        "dev": {
            "p": round(scores["ents_p"], 4),
            "r": round(scores["ents_r"], 4),
            "f": round(scores["ents_f"], 4),
        },
        "dev_per_type": per_type,
        "versions": {"spacy": spacy.__version__, "faker": faker.VERSION},  # type: ignore[attr-defined]
        "command": "python -m genai.dlp._ner.train " + " ".join(sys.argv[1:]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Faker keeps some word lists (e.g. it_IT cities) in sets, whose order follows
        # Python's per-process hash seed: fix it, or the corpus differs from run to run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        cmd = [sys.executable, "-m", "genai.dlp._ner.train", *args_in]
        os.execve(sys.executable, cmd, env)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output pipeline directory")
    for name in ("seed", "n_train", "n_dev", "epochs", "width", "depth", "hidden"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--labels", nargs="+", help=f"entity labels (default: {LABELS})")
    args = parser.parse_args(args_in)
    meta = train(args.out, **{k: v for k, v in vars(args).items() if k != "out"})
    print(json.dumps(meta["dev"]), f"-> {args.out}")


if __name__ == "__main__":
    main()
