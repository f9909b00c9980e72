"""The result cache on disk: private files, handles, owners, expiry, the size cap, secrets scrubbed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.result_cache import CacheMissError, ResultCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_read_back_by_its_handle_from_a_private_file(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    handle = cache.put("hello " * 10, "chars", 20, None)
    entry = cache.get(handle, None)
    assert entry.text == "hello " * 10 and entry.page_chars == 20
    (file,) = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert handle not in file.name


def test_another_profiles_handle_or_an_unknown_one_is_a_miss(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    handle = cache.put("x", "chars", 1, "team-a")
    with pytest.raises(CacheMissError):
        cache.get(handle, "team-b")
    with pytest.raises(CacheMissError):
        cache.get(handle, None)
    with pytest.raises(CacheMissError):
        cache.get("rc_nothing", "team-a")
    assert cache.get(handle, "team-a").text == "x"


def test_an_entry_expires_after_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(tmp_path, ttl_s=60.0, clock=clock)
    handle = cache.put("x", "chars", 1, None)
    clock.now += 61
    with pytest.raises(CacheMissError):
        cache.get(handle, None)
    assert not list(tmp_path.iterdir())


def test_the_oldest_entries_go_when_the_cache_passes_its_size_cap(tmp_path: Path) -> None:
    clock = Clock()
    cache = ResultCache(tmp_path, max_bytes=3000, clock=clock)
    handles = []
    for _ in range(5):
        clock.now += 1
        handles.append(cache.put("y" * 1000, "chars", 100, None))
    with pytest.raises(CacheMissError):
        cache.get(handles[0], None)
    assert cache.get(handles[-1], None).text == "y" * 1000
    assert sum(f.stat().st_size for f in tmp_path.iterdir()) <= 3000


def test_known_secret_values_are_scrubbed_before_they_are_written(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.learn(["sk-test-0123456789"])
    cache.put(cache.scrub("token=sk-test-0123456789;"), "chars", 10, None)
    (file,) = tmp_path.iterdir()
    assert "sk-test-0123456789" not in file.read_text()
