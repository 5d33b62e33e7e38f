"""Rows of the PubMedQA suite from the labelled PubMedQA set (not shipped: it stays in
../shared/data, or wherever you keep it).

    python examples/eval/pubmedqa.py --out /tmp/pubmedqa --limit 50
    genai eval run /tmp/pubmedqa/pubmedqa.yaml --target MODEL_DEPLOYMENT -p PROJECT

Each row asks one question with its abstract's passages in the prompt (reading
comprehension: the retrieval is given), expects yes, no or maybe first, and keeps the
long answer and the passages as references. Test questions (``test_ground_truth.json``)
first, in a seeded random order (the files list them grouped by answer: the first 60 test
ids are all "yes"), then the others, likewise.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / "shared" / "data" / "rag_qa" / "pubmedqa"
SYSTEM = (
    "You answer biomedical research questions from the passages given. Start with one "
    "word, yes, no or maybe, then give one sentence of reasons."
)


def _passages(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    parsed = ast.literal_eval(str(value))  # the file keeps lists as Python literals
    return [str(v) for v in parsed]


def rows(data: Path, limit: int | None) -> list[dict[str, object]]:
    items = json.loads((data / "ori_pqal.json").read_text(encoding="utf-8"))
    test_ids = list(json.loads((data / "test_ground_truth.json").read_text(encoding="utf-8")))
    shuffle = random.Random(0).shuffle
    tests = [i for i in test_ids if i in items]
    others = [i for i in items if i not in set(test_ids)]
    shuffle(tests)
    shuffle(others)
    order = tests + others
    out = []
    for pmid in order[:limit]:
        item = items[pmid]
        passages = _passages(item["CONTEXTS"])
        context = "\n".join(f"[{n}] {p}" for n, p in enumerate(passages, 1))
        out.append(
            {
                "id": pmid,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"{context}\n\nQuestion: {item['QUESTION']}"},
                ],
                "question": item["QUESTION"],
                "reference": item["final_decision"],
                "long_answer": item["LONG_ANSWER"],
                "reference_contexts": passages,
                "year": item.get("YEAR"),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the PubMedQA folder")
    parser.add_argument("--out", type=Path, required=True, help="where the suite is written")
    parser.add_argument("--limit", type=int, default=None, help="rows (default: all 1,000)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    found = rows(args.data, args.limit)
    with open(args.out / "pubmedqa.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in found)
    shutil.copy(HERE / "pubmedqa.yaml", args.out / "pubmedqa.yaml")
    print(f"{len(found)} rows: {args.out / 'pubmedqa.yaml'}")


if __name__ == "__main__":
    main()
