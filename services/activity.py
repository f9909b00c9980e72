"""The activity log: every tool call on the record, in SQLite under the data dir.

Calls are recorded off the hot path: `ActivityLog.record_nowait` queues a
record; one writer task inserts batches in a worker thread, at most one batch
per FLUSH_INTERVAL_S, so a busy proxy pays one thread hop and one SQLite
transaction per batch rather than per call. If the database is
locked or the disk is full, recording fails loudly in the log and the calls
themselves carry on. Arguments and results are capped (the original size is
kept) and scrubbed of known secret values before they are stored.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio

from services.private_files import keep_private, make_private_dir

logger = logging.getLogger(__name__)

QUEUE_SIZE: Final = 10_000
BATCH_SIZE: Final = 200
FLUSH_INTERVAL_S: Final = 0.1
"""How long a record may wait for others to share its transaction (REST readers see it this late)."""
FINAL_FLUSH_S: Final = 2.0
RETENTION_INTERVAL_S: Final = 600.0
SCRUBBED: Final = "••••"
STATUSES: Final = (
    "ok",
    "error",
    "blocked",
    "timeout",
    "unavailable",
    "task_created",
    "rejected",
    "input_required",
    "declined",
)
"""Every status a record can have: a call's outcome, or an upstream's question the client declined."""
"""`unavailable`: the server was not running or went away (the call never ran, or was cut off);
`task_created`: a call made as a task, whose result comes later (`tasks/result <tool>`);
`rejected`: shed by a concurrency limit, never run (gateway/admission.py)."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tool_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    surface TEXT NOT NULL,
    client_name TEXT,
    client_version TEXT,
    session_id TEXT,
    request_id TEXT,
    arguments TEXT,
    arguments_size INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    result_size INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT,
    intent_reason TEXT,
    client TEXT,
    profile TEXT
);
CREATE INDEX IF NOT EXISTS tool_calls_time ON tool_calls (time);
CREATE INDEX IF NOT EXISTS tool_calls_server_tool ON tool_calls (server, tool);
CREATE INDEX IF NOT EXISTS tool_calls_session ON tool_calls (session_id);
"""
COLUMNS: Final = (
    "id", "time", "server", "tool", "surface", "client_name", "client_version", "session_id", "request_id",
    "arguments", "arguments_size", "result", "result_size", "duration_ms", "status", "error", "intent_reason",
    "client", "profile",
)  # fmt: skip
ADDED_COLUMNS: Final = ("client", "profile")
"""Columns newer than the first schema: added to an older database when it is opened."""
_INSERT: Final = (
    f"INSERT INTO tool_calls ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"
)
FILTERS: Final = ("server", "tool", "status", "session_id", "request_id", "surface", "client", "profile")


@dataclass(frozen=True)
class Retention:
    max_age_days: float = 90.0
    max_records: int = 100_000
    max_size_bytes: int = 256 * 1024 * 1024


@dataclass
class CallRecord:
    server: str
    tool: str
    surface: str
    status: str
    duration_ms: float
    arguments: str = ""
    result: str = ""
    error: str | None = None
    client_name: str | None = None
    client_version: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    intent_reason: str | None = None
    time: float = 0.0
    client: str | None = None
    """The client credential's name (issue 21); None for the API key or no credential."""
    profile: str | None = None
    """The profile the caller was served (None: every server)."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4 and value in text:
            text = text.replace(value, SCRUBBED)
    return text


def cap(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"… [{len(data)} bytes, truncated]"


class ActivityDb:
    """Blocking SQLite access; every method runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        make_private_dir(path.parent)
        # SQLite creates the -wal and -shm files with the database file's mode: so that one is made
        # 0600 first. Files an older version left readable by others are tightened.
        keep_private(path)
        for companion in ("-wal", "-shm", "-journal"):
            keep_private(path.with_name(path.name + companion), create=False)
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=2.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        existing = {row[1] for row in self._conn.execute("PRAGMA table_info(tool_calls)")}
        for column in ADDED_COLUMNS:
            if existing and column not in existing:
                self._conn.execute(f"ALTER TABLE tool_calls ADD COLUMN {column} TEXT")
        self._conn.executescript(_SCHEMA)

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (SQLITE_FULL); do not mask the cause.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def query(
        self, filters: dict[str, str], since: float | None, until: float | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where: list[str] = []
        params: list[str | float] = []
        for key, value in filters.items():
            where.append(f"{key} = ?")
            params.append(value)
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if until is not None:
            where.append("time <= ?")
            params.append(until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM tool_calls {clause}", params).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM tool_calls {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows], int(total)

    def get(self, record_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM tool_calls WHERE id = ?", (record_id,)
            ).fetchone()
        return dict(zip(COLUMNS, row, strict=True)) if row else None

    def apply_retention(self, retention: Retention, now: float) -> int:
        """Delete by age, then count, then size; returns how many records went."""
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute(
                "DELETE FROM tool_calls WHERE time < ?", (now - retention.max_age_days * 86400,)
            )
            self._conn.execute(
                "DELETE FROM tool_calls WHERE id <= "
                "(SELECT id FROM tool_calls ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (retention.max_records,),
            )
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
            if (pages - free) * page_size > retention.max_size_bytes:
                count = self._conn.execute("SELECT COUNT(*) FROM tool_calls").fetchone()[0]
                self._conn.execute(
                    "DELETE FROM tool_calls WHERE id IN (SELECT id FROM tool_calls ORDER BY id LIMIT ?)",
                    (max(1, count // 10),),
                )
            return int(self._conn.total_changes - before)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class ActivityLog:
    """The trio side: a bounded queue in front of one writer task."""

    def __init__(
        self, path: Path, *, max_payload_bytes: int = 64 * 1024, retention: Retention | None = None
    ) -> None:
        self.path = path
        self.max_payload_bytes = max_payload_bytes
        self.retention = retention or Retention()
        self.secrets: set[str] = set()
        self._send, self._receive = trio.open_memory_channel[CallRecord](QUEUE_SIZE)
        self.db: ActivityDb | None = None
        self.dropped = 0

    def record_nowait(self, record: CallRecord) -> None:
        record.time = record.time or time.time()
        try:
            self._send.send_nowait(record)
        except trio.WouldBlock:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("activity log queue full: %d call record(s) dropped", self.dropped)

    def _row(self, record: CallRecord) -> tuple[Any, ...]:
        arguments = scrub(record.arguments, self.secrets)
        result = scrub(record.result, self.secrets)
        error = scrub(record.error, self.secrets) if record.error else None
        return (
            record.time, record.server, record.tool, record.surface, record.client_name,
            record.client_version, record.session_id, record.request_id,
            cap(arguments, self.max_payload_bytes), len(record.arguments.encode()),
            cap(result, self.max_payload_bytes), len(record.result.encode()),
            round(record.duration_ms, 3), record.status, error, record.intent_reason,
            record.client, record.profile,
        )  # fmt: skip

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the database and write whatever is queued until cancelled."""
        try:
            self.db = await trio.to_thread.run_sync(ActivityDb, self.path)
        except sqlite3.Error as exc:
            logger.error("activity log disabled: cannot open %s: %s", self.path, exc)
        task_status.started()
        batch: list[CallRecord] = []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._retention_loop)
                async for first in self._receive:
                    batch.append(first)
                    with trio.move_on_after(FLUSH_INTERVAL_S):
                        while len(batch) < BATCH_SIZE:
                            batch.append(await self._receive.receive())
                    full, batch = batch, []
                    await self._write(full)
        finally:
            # Shutdown: what was queued still goes on the record, within a bounded, shielded write.
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            if batch:
                with trio.move_on_after(FINAL_FLUSH_S, shield=True):
                    await self._write(batch)

    async def _write(self, batch: list[CallRecord]) -> None:
        if self.db is None:
            return
        rows = [self._row(record) for record in batch]
        try:
            await trio.to_thread.run_sync(self.db.insert, rows)
        except (sqlite3.Error, OSError) as exc:
            logger.error("activity log: could not record %d call(s): %s", len(rows), exc)

    async def _retention_loop(self) -> None:
        while True:
            if self.db is not None:
                try:
                    removed = await trio.to_thread.run_sync(
                        self.db.apply_retention, self.retention, time.time()
                    )
                    if removed:
                        logger.info("activity log: retention removed %d record(s)", removed)
                except sqlite3.Error as exc:
                    logger.error("activity log: retention failed: %s", exc)
            await trio.sleep(RETENTION_INTERVAL_S)

    async def query(
        self, filters: dict[str, str], since: float | None, until: float | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        if self.db is None:
            return [], 0
        return await trio.to_thread.run_sync(self.db.query, filters, since, until, limit, offset)

    async def get(self, record_id: int) -> dict[str, Any] | None:
        if self.db is None:
            return None
        return await trio.to_thread.run_sync(self.db.get, record_id)
