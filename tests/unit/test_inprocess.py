"""The operator's rule for backends a deployment runs inside the gateway process
(genai.gateway.InProcessPolicy): which backends, and which directories their files may
come from. A project maintainer writes deployments; the host is the operator's."""

from __future__ import annotations

from pathlib import Path

import pytest

import genai
from genai.errors import Forbidden
from genai.gateway import InProcessPolicy, inprocess_policy


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    allowed, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    (allowed / "tiny").mkdir(parents=True)
    (elsewhere / "secret").mkdir(parents=True)
    return allowed, elsewhere


def test_by_default_only_backends_that_load_no_weights_may_run_in_process() -> None:
    policy = InProcessPolicy()
    policy.check("extractive", {}, where="target 'a'")
    policy.check("fake", {"replies": ["hi"]}, where="target 'a'")
    for backend in ("transformers", "vllm", "some-plugin"):
        with pytest.raises(Forbidden, match="GENAI_INPROCESS_BACKENDS") as refused:
            policy.check(backend, {"model": "/anything"}, where="target 'a'")
        assert f"target 'a' runs the backend {backend!r}" in refused.value.message


def test_an_allowed_backends_files_must_lie_under_a_model_root(
    roots: tuple[Path, Path],
) -> None:
    allowed, elsewhere = roots
    policy = InProcessPolicy.of(["transformers"], [allowed])
    policy.check("transformers", {"model": str(allowed / "tiny")}, where="t")
    policy.check("transformers", {"model": str(allowed / "not-yet-there")}, where="t")
    for outside in (elsewhere / "secret", allowed / ".." / "elsewhere", Path("/etc")):
        with pytest.raises(Forbidden, match="GENAI_MODEL_ROOTS"):
            policy.check("transformers", {"model": str(outside)}, where="t")


def test_adapters_are_checked_one_by_one(roots: tuple[Path, Path]) -> None:
    allowed, elsewhere = roots
    policy = InProcessPolicy.of(["transformers", "vllm"], [allowed])
    good = {"model": str(allowed / "tiny"), "adapters": {"a": str(allowed / "a")}}
    policy.check("vllm", good, where="t")
    bad = {**good, "adapters": {"a": str(allowed / "a"), "b": str(elsewhere / "secret")}}
    with pytest.raises(Forbidden, match=r"options\.adapters\.b names files outside"):
        policy.check("vllm", bad, where="t")


def test_a_symlink_out_of_a_root_is_refused(roots: tuple[Path, Path]) -> None:
    allowed, elsewhere = roots
    (allowed / "link").symlink_to(elsewhere / "secret")
    policy = InProcessPolicy.of(["transformers"], [allowed])
    with pytest.raises(Forbidden):
        policy.check("transformers", {"model": str(allowed / "link")}, where="t")


def test_the_extractive_backends_embedding_model_is_checked_the_bundled_one_allowed(
    roots: tuple[Path, Path],
) -> None:
    allowed, elsewhere = roots
    policy = InProcessPolicy.of(["extractive"], [allowed])
    policy.check("extractive", {"embedding_model": "all-MiniLM-L6-v2"}, where="t")
    policy.check("extractive", {"embedding_model": str(allowed / "tiny")}, where="t")
    with pytest.raises(Forbidden, match="embedding_model"):
        policy.check("extractive", {"embedding_model": str(elsewhere / "secret")}, where="t")


def test_the_refusal_does_not_say_whether_a_path_exists(roots: tuple[Path, Path]) -> None:
    _, elsewhere = roots
    policy = InProcessPolicy.of(["transformers"], [])
    messages = []
    for path in (elsewhere / "secret", elsewhere / "no-such-dir"):
        with pytest.raises(Forbidden) as refused:
            policy.check("transformers", {"model": str(path)}, where="t")
        messages.append(refused.value.message)
    assert messages[0] == messages[1]


def test_the_policy_comes_from_the_settings(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    settings = genai.Settings(
        home=tmp_path / "home",
        inprocess_backends="extractive, transformers",
        model_roots=str(allowed),
    )
    policy = inprocess_policy(settings)
    assert policy.backends == {"extractive", "transformers"}
    policy.check("transformers", {"model": str(allowed / "tiny")}, where="t")
    assert inprocess_policy(genai.Settings(home=tmp_path / "h2")) == InProcessPolicy()


def test_genai_up_with_a_model_allows_transformers_on_that_directory(
    monkeypatch: pytest.MonkeyPatch, roots: tuple[Path, Path]
) -> None:
    """`genai up --model DIR` is the operator on their machine: the gateway it starts may
    run transformers on DIR, and on nothing else that was not allowed before."""
    from apps.cli._up import _allow_local_model

    allowed, elsewhere = roots
    monkeypatch.delenv("GENAI_INPROCESS_BACKENDS", raising=False)
    monkeypatch.setenv("GENAI_MODEL_ROOTS", str(elsewhere))
    _allow_local_model(allowed / "tiny")
    _allow_local_model(allowed / "tiny")  # again: nothing doubled
    policy = inprocess_policy(genai.Settings(home=allowed / "home"))
    assert policy.backends == {"extractive", "fake", "transformers"}
    assert policy.model_roots == (elsewhere.resolve(), (allowed / "tiny").resolve())
    policy.check("transformers", {"model": str(allowed / "tiny")}, where="t")
    with pytest.raises(Forbidden):
        policy.check("vllm", {"model": str(allowed / "tiny")}, where="t")


def test_contains_says_whether_a_members_path_lies_in_the_model_roots(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "tiny").mkdir(parents=True)
    (tmp_path / "secrets").mkdir()
    (root / "escape").symlink_to(tmp_path / "secrets")
    policy = InProcessPolicy.of(["transformers"], [root])
    assert policy.contains(str(root / "tiny"))
    assert not policy.contains(str(tmp_path / "secrets"))
    assert not policy.contains(str(root / "escape"))  # symlinks are resolved
    assert not InProcessPolicy().contains(str(root / "tiny"))  # no roots: nothing
