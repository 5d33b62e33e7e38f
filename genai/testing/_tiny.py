"""Tiny real models for tests, demos and benchmarks: no download, seconds on a CPU.

:func:`tiny_model` writes a randomly initialised Llama-architecture causal LM with a
byte-level BPE tokenizer trained here and a ChatML chat template; :func:`tiny_adapter`
writes a PEFT LoRA adapter for it with non-zero weights, so an adapter visibly changes what
the model generates. Both are deterministic for a given seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError

__all__ = ["CHATML_TEMPLATE", "HERMES_TOOLS_TEMPLATE", "tiny_adapter", "tiny_model"]

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: ChatML with tools as Hermes and Qwen models render them: the tools' signatures in the
#: system turn, calls as ``<tool_call>`` JSON blocks, results as ``<tool_response>``.
HERMES_TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% endif %}"
    "You may call one or more functions. Their signatures are within <tools></tools>:\n"
    "<tools>{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}{{ '\\n</tools>\\n' }}"
    "For each call, return a JSON object within <tool_call></tool_call> tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    "<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and tools %}"
    "{% elif message['role'] == 'assistant' and message.get('tool_calls') %}"
    "<|im_start|>assistant\n{% if message['content'] %}{{ message['content'] + '\\n' }}"
    "{% endif %}{% for call in message['tool_calls'] %}{{ '<tool_call>\\n' }}"
    '{"name": {{ call.function.name | tojson }}, "arguments": '
    "{{ call.function.arguments | tojson }}}{{ '\\n</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\\n<tool_response>\\n' + message['content'] }}"
    "{{ '\\n</tool_response><|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{{ '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_SPECIAL = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
_CORPUS = """
The platform serves models with adapters chosen per request. A project owns its keys,
prompts, datasets, adapters, caches, knowledge bases and evaluation suites. Questions about
accounts, payments, refunds, invoices and cards are answered by a knowledge bot that cites
its sources. How do I open an account? How do I close an account? Where is my invoice?
The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2026. Hello, world! Thank you. Yes, no, maybe.
Training runs fine-tune a base model with LoRA, and evaluation gates each promotion.
"""


def _require() -> Any:
    try:
        import tokenizers
        import torch
        import transformers
    except ImportError as error:
        raise MissingDependencyError(
            error.name or "transformers", extra="llm", purpose="genai.testing.tiny_model"
        ) from None
    return torch, transformers, tokenizers


def _train_tokenizer(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = _CORPUS.split()
    corpus = [_CORPUS] + [" ".join(words[i:] + words[:i]) for i in range(0, len(words), 3)]
    tok.train_from_iterator(corpus * 4, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(
    path: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 512,
    context_window: int = 512,
    chat_template: bool = True,
    tools: bool = False,
    name: str = "tiny-llama",
) -> Path:
    """Write a tiny causal LM (Llama architecture, random weights) to ``path``.

    ``tools`` gives it a chat template that renders tools (:data:`HERMES_TOOLS_TEMPLATE`);
    ``chat_template=False`` gives it none.

    The defaults give about 150 thousand parameters; ``hidden_size=256, num_layers=4``
    gives a "small" model for benchmarks. Returns ``path``.
    """
    torch, transformers, _ = _require()
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    if tools:
        tokenizer.chat_template = HERMES_TOOLS_TEMPLATE
    if not chat_template:
        tokenizer.chat_template = None
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=context_window,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # A wide initialisation gives varied greedy output instead of one token repeated.
        initializer_range=0.6,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = transformers.LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "genai_model.json").write_text(json.dumps({"name": name, "seed": seed}))
    return out


def tiny_adapter(
    model_path: str | Path,
    path: str | Path,
    *,
    seed: int = 1,
    rank: int = 4,
    alpha: int = 8,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    scale: float = 1.0,
) -> Path:
    """Write a LoRA adapter for the model at ``model_path`` to ``path`` (non-zero weights)."""
    torch, transformers, _ = _require()
    from peft import LoraConfig, get_peft_model

    model = transformers.AutoModelForCausalLM.from_pretrained(model_path)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        peft_model = get_peft_model(
            model,
            LoraConfig(
                r=rank,
                lora_alpha=alpha,
                target_modules=list(target_modules),
                init_lora_weights=False,
                lora_dropout=0.0,
            ),
        )
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_" in name:
                    parameter.normal_(0.0, scale)
    finally:
        torch.random.set_rng_state(generator_state)
    out = Path(path)
    peft_model.save_pretrained(str(out))
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(Path(model_path).resolve())
    config_path.write_text(json.dumps(config, indent=2))
    return out
