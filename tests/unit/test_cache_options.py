"""A project's ``cache`` option: off unless turned on, for the whole project or per
deployment, with settings that a deployment may override; bad values name what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from cache._options import CacheLevel, CacheOptions, CacheSettings
from genai.errors import ValidationError


@pytest.mark.parametrize("raw", [None, False, "", {}, {"threshold": 0.9}, '{"enabled": false}'])
def test_the_cache_is_off_unless_turned_on(raw: Any) -> None:
    assert CacheOptions.parse(raw).settings("chat") is None


@pytest.mark.parametrize("raw", [True, {"enabled": True}, '{"enabled":true}'])
def test_turned_on_for_the_project_it_is_on_for_every_deployment(raw: Any) -> None:
    options = CacheOptions.parse(raw)
    assert options.settings("chat") == options.settings("other") == CacheSettings()


def test_a_deployment_is_turned_on_or_off_on_its_own_with_its_own_settings() -> None:
    raw = {
        "threshold": 0.85,
        "max_temperature": 0.3,
        "deployments": {"chat": {"enabled": True, "ttl_s": 60}, "drafts": {"enabled": False}},
    }
    options = CacheOptions.parse(raw)
    assert options.settings("chat") == CacheSettings(0.85, 60, 0.3)
    assert options.settings("drafts") is None and options.settings("other") is None
    everywhere = CacheOptions.parse({**raw, "enabled": True})
    assert everywhere.settings("other") == CacheSettings(0.85, None, 0.3)
    assert everywhere.settings("drafts") is None  # off on its own
    assert everywhere.enabled_for() == (True, ["chat"], ["drafts"])
    assert CacheOptions.parse(everywhere.to_json()) == everywhere


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"enabled": "yes"}, "cache.enabled"),
        ({"enabled": True, "threshold": 1.5}, "cache.threshold"),
        ({"enabled": True, "ttl_s": 0}, "cache.ttl_s"),
        ({"enabled": True, "max_temperature": -1}, "cache.max_temperature"),
        ({"enabled": True, "treshold": 0.9}, "'treshold'"),
        ({"deployments": ["chat"]}, "cache.deployments"),
        ({"deployments": {"chat": True}}, "the cache option"),
        ("{not json", "the cache option"),
        (7, "the cache option"),
    ],
)
def test_a_bad_option_says_what_is_wrong(raw: Any, named: str) -> None:
    with pytest.raises(ValidationError, match=named) as caught:
        CacheOptions.parse(raw, project="shop")
    assert "shop" in caught.value.message


def test_a_level_merges_only_what_is_given() -> None:
    level = CacheLevel(enabled=True, threshold=0.9)
    assert level.merged(threshold=None, ttl_s=30) == CacheLevel(True, 0.9, 30)
    assert level.merged(enabled=False).to_dict() == {"enabled": False, "threshold": 0.9}
