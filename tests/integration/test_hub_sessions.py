"""The Hub's sealed cookies and link tokens, on a clock the test moves: sessions and links
expire, a token of one kind is not the other, and a changed byte is no session at all."""

from __future__ import annotations

from typing import Any

import pytest

from apps.hub._sessions import LINK_TTL_S, SESSION_TTL_S, SessionCodec

pytestmark = pytest.mark.sqlite_only  # no database: the secret key file under GENAI_HOME

KEY = "gk_abcdefghij_" + "A" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def codec(settings: Any) -> tuple[SessionCodec, Clock]:
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    clock = Clock()
    return SessionCodec(settings, now=clock), clock


def test_a_session_opens_until_it_expires(codec: tuple[SessionCodec, Clock]) -> None:
    sessions, clock = codec
    made, cookie = sessions.new_session(KEY, "shop")
    opened = sessions.open_session(cookie)
    assert opened == made and opened.project == "shop" and opened.key == KEY
    assert KEY not in cookie and "abcdefghij" not in cookie  # sealed, not just signed
    assert set(cookie) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    clock.now += SESSION_TTL_S - 1
    assert sessions.open_session(cookie) == made
    clock.now += 1
    assert sessions.open_session(cookie) is None
    clock.now -= SESSION_TTL_S + 10  # issued in the future: refused too
    assert sessions.open_session(cookie) is None


def test_csrf_tokens_differ_per_session_and_compare_exactly(
    codec: tuple[SessionCodec, Clock],
) -> None:
    sessions, _ = codec
    one, _ = sessions.new_session(KEY, "shop")
    two, _ = sessions.new_session(KEY, "shop")
    assert one.csrf != two.csrf and len(one.csrf) >= 40
    assert one.csrf_ok(one.csrf)
    for wrong in (two.csrf, "", None, one.csrf[:-1], one.csrf + "x"):
        assert not one.csrf_ok(wrong)


def test_changed_or_foreign_tokens_open_to_nothing(
    codec: tuple[SessionCodec, Clock], settings: Any
) -> None:
    sessions, clock = codec
    _, cookie = sessions.new_session(KEY, "shop")
    link = sessions.new_link(KEY, "shop")
    flipped = cookie[:10] + ("A" if cookie[10] != "A" else "B") + cookie[11:]
    for bad in (flipped, cookie[:-1], "", None, "!!!", "A" * 5000, link):
        assert sessions.open_session(bad) is None, bad
    assert sessions.open_link(cookie) is None  # a session cookie is no sign-in link
    # another platform (another secret key) cannot read this one's cookies
    other_home = settings.home.parent / "other-home"
    other_home.mkdir(mode=0o700)
    other = SessionCodec(settings.model_copy(update={"home": other_home}), now=clock)
    assert other.open_session(cookie) is None


def test_a_link_says_when_it_expires(codec: tuple[SessionCodec, Clock]) -> None:
    sessions, clock = codec
    token = sessions.new_link(KEY, "shop")
    opened = sessions.open_link(token)
    assert opened is not None and opened.key == KEY and opened.project == "shop"
    assert opened.expires == clock.now + LINK_TTL_S
    assert sessions.open_link(sessions.new_link(KEY, "shop")).nonce != opened.nonce  # type: ignore[union-attr]
