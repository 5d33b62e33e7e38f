"""xgrammar's per-token mask cost on the CPU: runs in its own venv (bench/.venvs/xgrammar).

    bench/.venvs/xgrammar/bin/python bench/_xgrammar_driver.py '{"model": DIR, "schema": {...},
        "document": "...", "rounds": 20}'

Prints one JSON object: xgrammar's version and the timings of bench/_mask_timing.py.
The grammar is compiled as vLLM's xgrammar backend does for a JSON schema with compact
separators (no free whitespace, as llguidance runs with ``whitespace_flexible`` off).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys

import torch
import xgrammar as xgr
from _mask_timing import time_document
from transformers import AutoConfig, AutoTokenizer


def main() -> None:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(int(args.get("threads", torch.get_num_threads())))
    tokenizer = AutoTokenizer.from_pretrained(args["model"])
    vocab = int(AutoConfig.from_pretrained(args["model"]).vocab_size)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
    schema = json.dumps(args["schema"])
    tokens = tokenizer.encode(args["document"], add_special_tokens=False)
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    logits = torch.randn(1, vocab)

    def start() -> xgr.GrammarMatcher:
        # a new compiler with its cache off: the set-up time of a schema seen the first time
        compiler = xgr.GrammarCompiler(info, cache_enabled=False)
        compiled = compiler.compile_json_schema(schema, any_whitespace=False, separators=(",", ":"))
        return xgr.GrammarMatcher(compiled)

    def fill(matcher: xgr.GrammarMatcher) -> None:
        matcher.fill_next_token_bitmask(bitmask)

    def apply() -> None:
        xgr.apply_token_bitmask_inplace(logits, bitmask)

    def consume(matcher: xgr.GrammarMatcher, token: int) -> None:
        if not matcher.accept_token(token):
            raise SystemExit(f"xgrammar refused token {token} of the document")

    timings = time_document(start, fill, apply, consume, tokens, int(args["rounds"]))
    print(json.dumps({"version": importlib.metadata.version("xgrammar"), **timings}))


if __name__ == "__main__":
    main()
