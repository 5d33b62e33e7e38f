"""``genai.models.vllm_adapter_problems``: what vLLM would refuse in a LoRA adapter, one
sentence per problem, from its adapter_config.json and saved names."""

from __future__ import annotations

from typing import Any

import pytest

from genai.models import vllm_adapter_problems

PLAIN = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"]}


@pytest.mark.parametrize(
    "config",
    [
        {},
        PLAIN,
        {**PLAIN, "r": 512, "bias": "none", "modules_to_save": None, "use_rslora": True},
        {**PLAIN, "target_modules": "all-linear", "rank_pattern": {}, "alpha_pattern": {}},
        {**PLAIN, "r": 12, "layers_to_transform": None, "trainable_token_indices": None},
    ],
)
def test_what_vllm_serves_has_no_problems(config: dict[str, Any]) -> None:
    files = ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json"]
    lora = ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert vllm_adapter_problems(config, files + lora) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"use_dora": True}, ["use_dora", "DoRA", "vllm#6983"]),
        ({"modules_to_save": ["lm_head", "score"]}, ["lm_head, score", "vllm#9280", "merge"]),
        ({"target_modules": ["q_proj", "embed_tokens"]}, ["embed_tokens", "target_modules"]),
        ({"target_modules": ["lm_head"]}, ["lm_head", "output layer"]),
        ({"trainable_token_indices": [49152, 49153]}, ["trainable_token_indices", "vocabulary"]),
        ({"r": 1024}, ["rank 1024", "512", "max_lora_rank"]),
        ({"rank_pattern": {"q_proj": 4}}, ["rank_pattern"]),
        ({"alpha_pattern": {"q_proj": 8}}, ["alpha_pattern"]),
        ({"layers_to_transform": [0, 1]}, ["layers_to_transform", "all layers"]),
        ({"bias": "lora_only"}, ["bias='lora_only'", "bias='none'"]),
    ],
)
def test_each_problem_is_one_sentence_saying_what_to_do(
    change: dict[str, Any], words: list[str]
) -> None:
    [problem] = vllm_adapter_problems({**PLAIN, **change})
    for word in words:
        assert word in problem
    assert problem.endswith(".") and problem.count(". ") == 0
    assert "train" in problem or "merge" in problem


@pytest.mark.parametrize(
    "name",
    [
        "new_embeddings.safetensors",
        "base_model.model.model.embed_tokens.weight",
        "base_model.model.lm_head.weight",
    ],
)
def test_saved_embeddings_are_a_problem(name: str) -> None:
    [problem] = vllm_adapter_problems(PLAIN, ["adapter_config.json", name])
    assert name in problem and "vocabulary" in problem


def test_problems_add_up_in_a_stable_order() -> None:
    config = {**PLAIN, "use_dora": True, "modules_to_save": ["lm_head"], "r": 2048}
    problems = vllm_adapter_problems(config, ["new_embeddings.safetensors"])
    assert [p.split(" ")[0] for p in problems] == ["use_dora", "modules_to_save", "the", "rank"]
