"""The registry on real SQLite and PostgreSQL: base models, immutable versions, references,
prompt versions and deployment revisions with adapter-slot quotas.

Datasets are in ``test_datasets.py``, runs and adapters in ``test_runs_adapters.py``, aliases
in ``test_aliases.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import genai
from genai.errors import (
    ConflictError,
    Forbidden,
    GenAIError,
    LicenseNotAllowed,
    NotFoundError,
    QuotaExceeded,
    ValidationError,
)
from genai.registry import Ref
from genai.store import schema as t

P = "demo"


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    return client


def _model(client, name: str = "base", **kw):
    values = {"source": "org/base-model", "license": "apache-2.0", **kw}
    return client.registry.models.register(P, name, **values)


def _outcome(call) -> str:
    """The error a call raises, as ``ClassName(field)``, or ``ok``."""
    try:
        call()
    except GenAIError as error:
        field = getattr(error, "field", None)
        return type(error).__name__ + (f"({field})" if field else "")
    return "ok"


# ------------------------------------------------------------------ base models


def test_model_from_a_hugging_face_id(admin) -> None:
    info = _model(
        admin,
        "llama",
        source="meta-llama/Llama-3.2-1B",
        license="llama3.2",
        revision="abc123",
        metadata={"params": "1B"},
    )
    assert (info.kind, info.name, info.version) == ("model", "llama", 1)
    assert info.source == "meta-llama/Llama-3.2-1B"
    assert (info.revision, info.license, info.metadata) == ("abc123", "llama3.2", {"params": "1B"})
    assert info.ref == "model:llama@1"
    assert info.created_by == "user:admin"
    assert admin.registry.models.get(P, "llama") == info


def test_model_from_an_existing_local_directory_is_stored_absolute(
    admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "weights").mkdir()
    monkeypatch.chdir(tmp_path)
    info = _model(admin, "local", source="weights")
    assert info.source == str((tmp_path / "weights").resolve())


def test_invalid_model_sources_are_refused(admin) -> None:
    sources = [
        "not a model id",
        "./missing-dir",
        "/no/such/dir",
        "org/",
        "a/b/c",
        "",
        "  ",
        "~nobody/x",
    ]
    outcomes = {source: _outcome(lambda s=source: _model(admin, source=s)) for source in sources}
    assert outcomes == dict.fromkeys(sources, "ValidationError(source)")
    assert admin.registry.models.list(P) == []


def test_model_source_that_is_a_file_is_refused(admin, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ValidationError, match="is a file"):
        _model(admin, source=str(tmp_path / "model.bin"))


def test_licence_outside_the_allowlist_is_refused(admin) -> None:
    with pytest.raises(LicenseNotAllowed) as caught:
        _model(admin, license="proprietary-eula")
    assert "GENAI_LICENSE_ALLOWLIST" in caught.value.message
    assert "proprietary-eula" in caught.value.message
    assert admin.registry.models.list(P) == []


def test_licence_is_matched_case_insensitively_and_stored_lower_case(admin) -> None:
    assert _model(admin, license=" Apache-2.0 ").license == "apache-2.0"


def test_settings_allowlist_replaces_the_default(admin, settings_factory) -> None:
    custom = settings_factory(license_allowlist=["Acme-Internal"])
    with genai.connect(custom, user="admin") as client:
        assert _model(client, "acme", license="acme-internal").license == "acme-internal"
        with pytest.raises(LicenseNotAllowed, match=r"allowlist \(acme-internal\)"):
            _model(client, "apache", license="apache-2.0")
    # the default allowlist still refuses it
    with pytest.raises(LicenseNotAllowed):
        _model(admin, "acme", license="acme-internal")


def test_allowlist_is_read_from_the_environment(
    admin, settings_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_LICENSE_ALLOWLIST", "acme-internal, MIT")
    with genai.connect(settings_factory(), user="admin") as client:
        assert client.settings.license_allowlist == ["acme-internal", "mit"]
        _model(client, "acme", license="acme-internal")
        with pytest.raises(LicenseNotAllowed):
            _model(client, "apache", license="apache-2.0")


# ------------------------------------------------------------------ versions


def test_versions_increment_per_name(admin) -> None:
    assert [_model(admin, "a").version for _ in range(3)] == [1, 2, 3]
    assert _model(admin, "b").version == 1
    assert [m.version for m in admin.registry.models.list(P, name="a")] == [3, 2, 1]
    assert [(m.name, m.version) for m in admin.registry.models.list(P)] == [
        ("a", 3),
        ("a", 2),
        ("a", 1),
        ("b", 1),
    ]
    assert admin.registry.models.get(P, "a").version == 3


def test_versions_are_numbered_per_project(admin) -> None:
    admin.projects.create("other")
    _model(admin, "m")
    _model(admin, "m")
    assert admin.registry.models.register("other", "m", source="org/x", license="mit").version == 1


def test_old_versions_are_unchanged_by_new_ones(admin) -> None:
    first = _model(admin, "m", source="org/one", description="first", metadata={"a": 1})
    _model(admin, "m", source="org/two", description="second", metadata={"a": 2})
    assert admin.registry.models.get(P, "m@1") == first


@pytest.mark.parametrize(
    ("table", "register"),
    [
        (t.Model, lambda c: _model(c, "m")),
        (t.PromptVersion, lambda c: c.registry.prompts.register(P, "m", template="Hi {x}")),
        (t.Dataset, lambda c: c.registry.datasets.register(P, "m", [{"a": 1}])),
    ],
    ids=["model", "prompt", "dataset"],
)
def test_stored_versions_cannot_be_modified(admin, table, register) -> None:
    before = register(admin)
    with pytest.raises(ConflictError, match="immutable"):
        with admin.store.session() as s:
            row = s.scalars(select(table).where(table.name == "m")).one()
            row.description = "rewritten history"
    api = {t.Model: "models", t.PromptVersion: "prompts", t.Dataset: "datasets"}[table]
    assert getattr(admin.registry, api).get(P, "m@1") == before


def test_duplicate_version_number_is_a_conflict(admin) -> None:
    _model(admin, "m")
    with pytest.raises(ConflictError):
        with admin.store.session() as s:
            proj = s.scalars(select(t.Project).where(t.Project.name == P)).one()
            s.add(
                t.Model(
                    project_id=proj.id,
                    name="m",
                    version=1,
                    source="org/x",
                    license="mit",
                    created_by="user:admin",
                )
            )


# ------------------------------------------------------------------ references


def test_references_resolve_by_name_version_alias_and_kind(admin) -> None:
    for _ in range(3):
        _model(admin, "m")
    admin.registry.aliases.set(P, "model:m@2", "stable")
    get = admin.registry.models.get
    expected = {
        "m": 3,
        "m@latest": 3,
        "m@1": 1,
        "m@3": 3,
        "m@stable": 2,
        "model:m": 3,
        "model:m@1": 1,
        "model:m@stable": 2,
        " m@2 ": 2,
    }
    assert {ref: get(P, ref).version for ref in expected} == expected


def test_invalid_and_unknown_references(admin) -> None:
    _model(admin, "m")
    invalid = [
        "",
        "@1",
        "m@",
        "m@1@2",
        "bad name",
        "m@ 1",
        "-m",
        "Model:m",
        "widget:m",
        "adapter:m",
        "m/x",
        "run:m",
    ]
    unknown = ["missing", "m@2", "m@0", "m@nosuchalias", "model:other@1"]
    outcomes = {
        ref: _outcome(lambda r=ref: admin.registry.models.get(P, r)) for ref in invalid + unknown
    }
    assert outcomes == {
        **dict.fromkeys(invalid, "ValidationError(ref)"),
        **dict.fromkeys(unknown, "NotFoundError"),
    }


def test_ref_parse() -> None:
    assert Ref.parse("adapter:bot@production") == Ref("adapter", "bot", "production")
    assert Ref.parse("bot@3", kind="adapter") == Ref("adapter", "bot", "3")
    assert str(Ref.parse("prompt:greet")) == "prompt:greet"
    assert Ref.parse("run:3f2a9c81d0e4") == Ref("run", "3f2a9c81d0e4", None)
    with pytest.raises(ValidationError, match="no @version"):
        Ref.parse("run:3f2a9c81d0e4@1")
    with pytest.raises(ValidationError, match="kind"):
        Ref.parse("bot@3")
    with pytest.raises(ValidationError, match="expected a model"):
        Ref.parse("adapter:bot", kind="model")


# ------------------------------------------------------------------ prompts


def test_prompt_with_the_same_content_keeps_its_version(admin) -> None:
    prompts = admin.registry.prompts
    first = prompts.register(P, "greet", template="Hello {name}", variables={"name": "x"})
    again = prompts.register(
        P, "greet", template="Hello {name}", variables={"name": "x"}, message="no change"
    )
    assert again == first
    assert [p.version for p in prompts.list(P, name="greet")] == [1]


def test_prompt_change_makes_a_new_version(admin) -> None:
    prompts = admin.registry.prompts
    v1 = prompts.register(P, "greet", template="Hello {name}")
    v2 = prompts.register(P, "greet", template="Hi {name}")
    v3 = prompts.register(P, "greet", template="Hi {name}", variables={"name": "friend"})
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "{q}"}]
    v4 = prompts.register(P, "greet", template=chat)
    assert [v.version for v in (v1, v2, v3, v4)] == [1, 2, 3, 4]
    assert len({v.content_hash for v in (v1, v2, v3, v4)}) == 4
    assert (v1.template_kind, v4.template_kind) == ("text", "chat")
    assert v4.template == {"template": chat, "variables": {}}
    # going back to an older text is a new version: only the newest is compared
    assert prompts.register(P, "greet", template="Hello {name}").version == 5
    assert prompts.get(P, "greet@1") == v1


# ------------------------------------------------------------------ deployments


def _adapter(client, name: str):
    return client.registry.adapters.register(
        P, name, base_model="base", rank=8, alpha=16, target_modules=["q_proj"]
    )


def test_deployment_changes_are_revisions(admin) -> None:
    _model(admin)
    _adapter(admin, "lora")
    deployments = admin.registry.deployments
    r1 = deployments.create(P, "svc", model="base", spec={"replicas": 1})
    r2 = deployments.create(P, "svc", model="base@1", adapter="lora", spec={"replicas": 2})
    assert (r1.version, r1.model, r1.adapter, r1.spec) == (1, "model:base@1", None, {"replicas": 1})
    assert (r2.version, r2.adapter, r2.spec) == (2, "adapter:lora@1", {"replicas": 2})
    assert deployments.get(P, "svc") == r2
    assert deployments.get(P, "svc@1") == r1


def test_deployment_of_an_unknown_adapter_is_not_found(admin) -> None:
    _model(admin)
    with pytest.raises(NotFoundError):
        admin.registry.deployments.create(P, "svc", model="base", adapter="nope")
    assert admin.registry.deployments.list(P) == []


def test_adapter_slots_quota(admin) -> None:
    _model(admin)
    for name in ("a", "b"):
        _adapter(admin, name)
    admin.quotas.set(P, adapter_slots=1)
    create = admin.registry.deployments.create
    create(P, "one", model="base", adapter="a")
    create(P, "two", model="base", adapter="a@1")  # the same adapter takes no new slot
    with pytest.raises(QuotaExceeded, match="adapter_slots") as caught:
        create(P, "three", model="base", adapter="b")
    assert "a" in caught.value.message
    _adapter(admin, "a")  # a@2: another version of an adapter in use
    create(P, "three", model="base", adapter="a@2")
    # moving 'two' and 'three' off adapters frees the slot for 'one' to switch to b
    with pytest.raises(QuotaExceeded):
        create(P, "one", model="base", adapter="b")
    create(P, "two", model="base")
    create(P, "three", model="base")
    assert create(P, "one", model="base", adapter="b").adapter == "adapter:b@1"


def test_raising_adapter_slots_admits_more_adapters(admin) -> None:
    _model(admin)
    for name in ("a", "b"):
        _adapter(admin, name)
    admin.quotas.set(P, adapter_slots=1)
    admin.registry.deployments.create(P, "one", model="base", adapter="a")
    with pytest.raises(QuotaExceeded):
        admin.registry.deployments.create(P, "two", model="base", adapter="b")
    admin.quotas.set(P, adapter_slots=None)
    assert admin.registry.deployments.create(P, "two", model="base", adapter="b").version == 1


def test_deployments_need_a_maintainer(admin, platform) -> None:
    _model(admin)
    admin.projects.add_member(P, "dev", role="developer")
    dev = platform("dev")
    _adapter(dev, "lora")  # developers register adapters...
    with pytest.raises(Forbidden, match="maintainer"):  # ...but do not deploy them
        dev.registry.deployments.create(P, "svc", model="base", adapter="lora")
    assert admin.registry.deployments.list(P) == []


def _linted_adapter(client, tmp_path: Path, name: str = "dora") -> str:
    folder = tmp_path / name
    folder.mkdir()
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    info = client.registry.adapters.register(P, name, base_model="base", path=folder)
    assert info.lint
    return str(info.ref)


def _target(backend: str, **options: object) -> dict[str, Any]:
    return {"name": "gpu", "backend": backend, "options": options}


def _spec(backend: str, **options: object) -> dict[str, Any]:
    return {"targets": [_target(backend, **options)]}


def test_a_vllm_deployment_of_an_adapter_vllm_refuses_is_not_applied(admin, tmp_path: Path) -> None:
    _model(admin)
    dora = _linted_adapter(admin, tmp_path)
    _adapter(admin, "plain")
    create = admin.registry.deployments.create
    with pytest.raises(ValidationError) as caught:
        create(P, "svc", model="base", adapter=dora, spec=_spec("vllm", model="/m"))
    message = str(caught.value)
    assert message.startswith("adapter:dora@1 cannot be served by vLLM (target 'gpu')")
    assert "vllm#6983" in message and "transformers backend" in message
    assert caught.value.field == "adapter"
    # Named by reference in a vLLM target's adapters, as a fallback, or by a spec for one
    # model server: refused too.
    by_ref: dict[str, Any] = {
        "targets": [{"name": "a", "url": "http://127.0.0.1:9/v1", "model": "m"}],
        "fallbacks": [_target("vllm", model="/m", adapters={"x": dora})],
    }
    for spec in (by_ref, {"backend": "vllm", "model": "/m"}):
        with pytest.raises(ValidationError, match="cannot be served by vLLM"):
            create(P, "svc", model="base", adapter=None if spec is by_ref else dora, spec=spec)
    assert admin.registry.deployments.list(P) == []
    # The same adapter on transformers, or a clean adapter on vLLM, deploys.
    on_cpu = create(P, "svc", model="base", adapter=dora, spec=_spec("transformers", model="/m"))
    on_gpu = create(P, "svc", model="base", adapter="plain", spec=_spec("vllm", model="/m"))
    assert (on_cpu.version, on_gpu.version) == (1, 2)


def test_apply_spec_refuses_a_linted_adapter_on_vllm(admin, settings_factory, tmp_path) -> None:
    from apps.deployments import apply_spec

    _model(admin)
    dora = _linted_adapter(admin, tmp_path)
    roots = tmp_path / "models"
    client = genai.connect(
        settings_factory(inprocess_backends=["vllm", "transformers"], model_roots=[str(roots)])
    )
    with client:
        with pytest.raises(ValidationError, match="vllm#6983"):
            apply_spec(client, P, "svc", _spec("vllm", model=str(roots / "m")), adapter=dora)
        assert client.registry.deployments.list(P) == []
        spec = _spec("transformers", model=str(roots / "m"))
        assert apply_spec(client, P, "svc", spec, adapter=dora).version == 1
