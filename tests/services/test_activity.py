"""The activity store with a real SQLite file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import trio

from services.activity import ActivityDb, ActivityLog, CallRecord, Retention, cap, scrub


def record(i: int, **fields: object) -> CallRecord:
    base = {
        "server": "s",
        "tool": f"t{i}",
        "surface": "mcp",
        "status": "ok",
        "duration_ms": 1.0,
        "time": time.time(),
    }
    return CallRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_retention_keeps_the_newest_records_by_count_and_drops_old_ones_by_age(tmp_path: Path) -> None:
    db = ActivityDb(tmp_path / "a.db")
    log = ActivityLog(tmp_path / "a.db")
    now = time.time()
    db.insert([log._row(record(i, time=now - (100 * 86400 if i == 0 else 0))) for i in range(20)])
    removed = db.apply_retention(Retention(max_age_days=90, max_records=5), now)
    rows, total = db.query({}, None, None, 100, 0)
    assert removed == 15 and total == 5
    assert [r["tool"] for r in rows] == [f"t{i}" for i in range(19, 14, -1)]


def test_payloads_are_capped_with_the_original_size_kept_and_secrets_scrubbed(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path / "a.db", max_payload_bytes=100)
    log.secrets = {"hunter2-secret"}
    row = log._row(record(1, arguments='{"password": "hunter2-secret"}', result="x" * 1000))
    assert "hunter2-secret" not in row[8] and "••••" in row[8]
    assert row[11] == 1000 and "truncated" in row[10] and len(row[10]) < 200
    assert scrub("abc", {"ab"}) == "abc"  # values under 4 characters are not treated as secrets
    assert cap("short", 10) == "short"


async def test_a_full_database_is_logged_and_does_not_stop_recording(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = ActivityLog(tmp_path / "a.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        assert log.db is not None
        pages = log.db._conn.execute("PRAGMA page_count").fetchone()[0]
        log.db._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
        with caplog.at_level(logging.ERROR):
            log.record_nowait(record(1, result="y" * 200_000))
            with trio.fail_after(10):
                while "could not record" not in caplog.text:
                    await trio.sleep(0.01)
        assert "full" in caplog.text
        log.db._conn.execute("PRAGMA max_page_count = 1073741823")
        log.record_nowait(record(2))
        with trio.fail_after(10):
            while (await log.query({}, None, None, 10, 0))[1] < 1:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
