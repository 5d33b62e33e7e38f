"""What loads slowly is kept by whoever owns it, not by the process: DLP detectors in a
:class:`~genai.dlp.Detectors` that an app's Dlp objects share, BM25 indexes in the
:class:`SparseCache` of a knowledge-base service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from genai.dlp import Detector, Detectors, Dlp, DlpKeys, Policy
from genai.registry import ArtifactStore
from rag import SparseCache
from rag._sparse import SparseIndex, load_sparse, save_sparse

KEYS = DlpKeys(b"a key for these tests, 32 bytes!")
WAIT_S = 10.0  # how long a thread waits for another before the test fails (never reached)


def fake_detector(name: str) -> Detector:
    return cast(Detector, name)  # Detectors keeps what it is given; nothing is detected here


def test_each_key_is_built_once_and_the_least_recently_used_dropped() -> None:
    detectors = Detectors(max_size=2)
    built: list[str] = []

    def build(name: str) -> Callable[[], Detector]:
        def built_now() -> Detector:
            built.append(name)
            return fake_detector(name)

        return built_now

    a, b, c = (("none", "en", key) for key in "abc")
    assert detectors.get(a, build("a")) == fake_detector("a")
    assert detectors.get(a, build("again")) == fake_detector("a")
    assert detectors.get(b, build("b")) == fake_detector("b")
    detectors.get(a, build("again"))  # a is now the most recently used
    detectors.get(c, build("c"))
    assert built == ["a", "b", "c"]
    assert len(detectors) == 2
    assert a in detectors and b not in detectors and c in detectors
    detectors.clear()
    assert len(detectors) == 0


def test_threads_wanting_one_detector_wait_for_one_build() -> None:
    detectors = Detectors()
    started, release = threading.Event(), threading.Event()
    builds: list[int] = []
    found: list[object] = []

    def slow() -> Detector:
        builds.append(1)
        started.set()
        assert release.wait(WAIT_S)
        return fake_detector("slow")

    def want() -> None:
        found.append(detectors.get((None, "en", "[]"), slow))

    threads = [threading.Thread(target=want) for _ in range(3)]
    threads[0].start()
    assert started.wait(WAIT_S)
    for thread in threads[1:]:
        thread.start()
    # another key is built while the first one still loads
    other = fake_detector("other")
    assert detectors.get((None, "de", "[]"), lambda: other) == other
    release.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert builds == [1] and found == ["slow"] * 3


def test_dlp_objects_share_the_detectors_they_are_given() -> None:
    shared = Detectors()
    first, second = Dlp(keys=KEYS, ner="none", detectors=shared), Dlp(keys=KEYS, ner="none")
    policy = Policy()
    assert not first.loaded(policy)
    first.warm(policy)
    assert first.loaded(policy) and len(shared) == 1
    assert Dlp(keys=KEYS, ner="none", detectors=shared).detector(policy) is first.detector(policy)
    assert not second.loaded(policy)  # one made for it alone: nothing shared with others
    assert second.detectors is not shared


def test_bm25_indexes_are_kept_in_the_cache_given(tmp_path: Path) -> None:
    pytest.importorskip("bm25s")
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    index = SparseIndex.build(["c1"], ["refunds take five days"], ["refunds"], [{}])
    cache = SparseCache(max_size=1)
    digest = save_sparse(index, artifacts, cache)
    assert load_sparse(digest, artifacts, cache) is index
    fresh = load_sparse(digest, artifacts)  # no cache: read from the artifact store
    assert fresh is not index and fresh.ids == ["c1"]
    other = save_sparse(SparseIndex.build([], [], [], []), artifacts, cache)
    assert len(cache) == 1 and cache.get(digest) is None and cache.get(other) is not None
    assert load_sparse(digest, artifacts, cache).search("refunds", 1)[0][0] == 0
