"""The embedded store's design against the alternatives measured before choosing it: the same
session (its bytes) read and written through our file store, SQLite (the standard library's
``sqlite3``, WAL) and LMDB (the ``lmdb`` package), each holding ``entries`` sessions."""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lmdb

from flask_oidc_refresh.store.files import FileStore

VALUE = os.urandom(600)  # about a signed-in session's size


def median_us(one: Callable[[int], object], calls: int = 20_000) -> float:
    for n in range(1_000):
        one(n)
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for n in range(calls):
            one(n)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def file_store(work: Path, entries: int) -> tuple[Callable[[int], object], Callable[[str], None]]:
    store = FileStore(str(work / "files"))
    for n in range(entries):
        store.write(f"session:{n}", VALUE, 3600)
    time.sleep(0.1)  # older than a fresh write: reads are then validated by os.stat alone
    return (lambda n: store.read("session:7"), lambda key: store.write(key, VALUE, 3600))


def sqlite(work: Path, entries: int) -> tuple[Callable[[int], object], Callable[[str], None]]:
    db = sqlite3.connect(work / "sessions.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE s (key TEXT PRIMARY KEY, value BLOB, expires REAL) WITHOUT ROWID")
    expires = time.time() + 3600
    db.executemany(
        "INSERT INTO s VALUES (?, ?, ?)", ((f"session:{n}", VALUE, expires) for n in range(entries))
    )

    def read(n: int) -> object:
        sql = "SELECT value FROM s WHERE key = ? AND expires > ?"
        return db.execute(sql, ("session:7", time.time())).fetchone()

    def write(key: str) -> None:
        sql = "INSERT OR REPLACE INTO s VALUES (?, ?, ?)"
        db.execute(sql, (key, VALUE, time.time() + 3600))

    return read, write


def lmdb_store(work: Path, entries: int) -> tuple[Callable[[int], object], Callable[[str], None]]:
    env = lmdb.open(str(work / "sessions.lmdb"), map_size=4 << 30, sync=False)
    with env.begin(write=True) as txn:
        for n in range(entries):
            txn.put(f"session:{n}".encode(), VALUE)

    def read(n: int) -> object:
        with env.begin() as txn:
            return txn.get(b"session:7")

    def write(key: str) -> None:
        with env.begin(write=True) as txn:
            txn.put(key.encode(), VALUE)

    return read, write


def compare(work: Path, entries: int = 10_000) -> dict[str, dict[str, float]]:
    """Median µs per design of a read, of a write of a new session, and of a rewrite of an
    existing one (a file rewrite frees the old file's blocks)."""
    results = {}
    for label, design in (
        ("our file store (stat-validated)", file_store),
        ("SQLite, WAL", sqlite),
        ("LMDB", lmdb_store),
    ):
        folder = work / label.split()[0]
        folder.mkdir(parents=True)
        read, write = design(folder, entries)
        results[label] = {
            "read": median_us(read),
            "write": median_us(partial(_write_new, write), 2_000),
            "rewrite": median_us(partial(_rewrite, write, entries), 2_000),
        }
    return results


def _write_new(write: Callable[[str], None], n: int) -> None:
    write(f"new:{time.perf_counter_ns()}")


def _rewrite(write: Callable[[str], None], entries: int, n: int) -> None:
    write(f"session:{n % entries}")
