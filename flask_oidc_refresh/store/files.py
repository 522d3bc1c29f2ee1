"""The embedded default store: sessions and token records as files, shared by every worker
process on the host, built for the per-request read.

- A read costs one ``os.stat``: each process keeps the bytes of the files it read, and reuses
  them while the file's inode, size and times are unchanged (a write replaces the file, so it
  gets a new inode). Files changed within the last moment are read again.
- An entry's expiry is its file's modification time: a background thread of each process
  sweeps one shard of expired files at a time, never a request. Nothing that has not expired is
  ever removed to make room.
- What is stored is data (msgpack for sessions, JSON for records), never a pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import msgspec
from flask import Flask
from flask_session.base import ServerSideSession

from .. import clock
from ..errors import SessionStoreFull
from .base import RECORD_PREFIX, Backend, file_lock
from .interface import LeanSessionInterface

#: Shards per folder: the first two hex digits of an entry's hashed key.
SHARDS = 256
#: The folder of the token records, kept under their own names.
RECORDS = "records"
#: How long the sweeper waits between two shards (a whole pass takes ``SHARDS`` times this).
SWEEP_PAUSE_SECONDS = 2.0
#: Files changed more recently than this are read again rather than trusted from the cache.
FRESH_WRITE_SECONDS = 0.05
#: How many files' bytes a process keeps.
CACHE_ENTRIES = 50_000
log = logging.getLogger(__name__)


class FileStore:
    """Entries as files in ``directory``: bytes in, bytes out, each with its expiry."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._cache: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
        self._paths: dict[str, str] = {}
        self._sweeper: threading.Thread | None = None
        self._sweeper_pid = 0

    def path(self, key: str) -> str:
        """The entry's file: a hash of the key, in a shard of the directory; a token record
        under its own name, in a shard of ``records``, so that records can be listed."""
        path = self._paths.get(key)
        if path is None:
            name = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
            path = f"{self.directory}{os.sep}{name[:2]}{os.sep}{name}"
            if key.startswith(RECORD_PREFIX):
                path = os.path.join(self.directory, RECORDS, name[:2], key[len(RECORD_PREFIX) :])
            if len(self._paths) >= CACHE_ENTRIES:
                self._paths.clear()
            self._paths[key] = path
        return path

    def read(self, key: str) -> bytes | None:
        """The entry's bytes; None when there is none or it has expired."""
        path = self.path(key)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        if st.st_mtime <= clock.now():
            return None  # expired: the sweeper removes it
        signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        if time.time() - st.st_ctime > FRESH_WRITE_SECONDS:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[path] = (signature, data)
        return data

    def write(self, key: str, data: bytes, ttl: float) -> None:
        """Replace the entry, to expire ``ttl`` seconds from now."""
        self._start_sweeper()
        path = self.path(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        expires = clock.now() + ttl
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.utime(temporary, (expires, expires))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        self._cache.pop(path, None)

    def delete(self, key: str) -> None:
        path = self.path(key)
        self._cache.pop(path, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def sweep(self, shard: int | None = None) -> int:
        """Remove the expired entries of one shard (or all); returns how many."""
        shards = range(SHARDS) if shard is None else (shard,)
        now = clock.now()
        removed = 0
        folders = [
            os.path.join(self.directory, *parents, f"{number:02x}")
            for number in shards
            for parents in ((), (RECORDS,))
        ]
        for folder in folders:
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat().st_mtime <= now:
                            os.unlink(entry.path)
                            removed += 1
        return removed

    def record_keys(self) -> Iterator[str]:
        """The keys of the token records that have not expired."""
        now = clock.now()
        for shard in range(SHARDS):
            folder = os.path.join(self.directory, RECORDS, f"{shard:02x}")
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        if not entry.name.startswith(".") and entry.stat().st_mtime > now:
                            yield RECORD_PREFIX + entry.name

    def _start_sweeper(self) -> None:
        """One background sweeper per process (started on the first write, after a fork too)."""
        if self._sweeper is not None and self._sweeper_pid == os.getpid():
            return
        self._sweeper_pid = os.getpid()
        self._sweeper = threading.Thread(target=self._sweep_forever, daemon=True)
        self._sweeper.start()

    def _sweep_forever(self) -> None:
        shard = int.from_bytes(os.urandom(1), "big")  # processes start at different shards
        while True:
            time.sleep(SWEEP_PAUSE_SECONDS)
            try:
                self.sweep(shard % SHARDS)
            except OSError as exc:
                log.warning("sweeping expired entries failed: %s", exc)
            shard += 1


class DataSerializer:
    """Sessions as msgpack (JSON read too), like Flask-Session's serializer but without its
    pickle fallback: stored data that is neither is ignored, never unpickled."""

    def __init__(self) -> None:
        self._encode = msgspec.msgpack.Encoder().encode
        self._decoders = (msgspec.msgpack.Decoder().decode, msgspec.json.Decoder().decode)

    def encode(self, session: Mapping[str, Any]) -> bytes:
        return self._encode(dict(session))

    def decode(self, data: bytes) -> dict[str, Any] | None:
        for decode in self._decoders:
            try:
                decoded = decode(data)
            except msgspec.DecodeError:
                continue
            return decoded if isinstance(decoded, dict) else None
        log.warning("ignored a stored session that is not ours")
        return None


class FileSessionInterface(LeanSessionInterface):
    """Flask-Session's interface over a :class:`FileStore`, with a lean read path."""

    def __init__(
        self,
        app: Flask,
        root: str,
        *,
        min_free_bytes: int = 0,
        signed_in: Callable[[Mapping[str, Any]], bool] = lambda session: False,
    ) -> None:
        config = app.config
        super().__init__(
            app,
            key_prefix=config.get("SESSION_KEY_PREFIX", "session:"),
            permanent=config.get("SESSION_PERMANENT", True),
            sid_length=config.get("SESSION_ID_LENGTH", 32),
        )
        self.root = root
        self.min_free_bytes = min_free_bytes
        self.signed_in = signed_in
        self.sessions = FileStore(os.path.join(root, "sessions"))
        self.serializer = DataSerializer()

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        data = self.sessions.read(store_id)
        return None if data is None else self.serializer.decode(data)

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        ttl = self._get_store_lifetime(session_lifetime, session)
        if not self.signed_in(session) and self._disk_nearly_full():
            log.error("the session store's disk is nearly full: a session was not saved")
            raise SessionStoreFull(
                "The server cannot keep new sessions just now. Please try again later."
            )
        self.sessions.write(store_id, self.serializer.encode(session), ttl)

    def _disk_nearly_full(self) -> bool:
        if not self.min_free_bytes:
            return False
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        return shutil.disk_usage(self.root).free < self.min_free_bytes

    def _delete_session(self, store_id: str) -> None:
        self.sessions.delete(store_id)

    def _get_store_lifetime(self, lifetime: timedelta, session: ServerSideSession) -> float:
        return lifetime.total_seconds() if session.permanent else 24 * 3600.0


class FileBackend(Backend):
    """Token records, the back-channel index and replay markers of the embedded store: JSON
    files beside its sessions, with file locks; shared by every process on the host."""

    shared = True

    def __init__(self, interface: FileSessionInterface) -> None:
        self.interface = interface
        self.records = FileStore(os.path.join(interface.root, "tokens"))
        self.lock_dir = os.path.join(interface.root, "locks")

    def read(self, key: str) -> Any:
        data = self.records.read(key)
        return None if data is None else msgspec.json.decode(data)

    def write(self, key: str, value: Any, ttl: int) -> None:
        self.records.write(key, msgspec.json.encode(value), ttl)

    def delete(self, key: str) -> None:
        self.records.delete(key)

    def delete_session(self, key: str) -> None:
        self.interface.sessions.delete(key)

    def record_keys(self) -> Iterator[str]:
        return self.records.record_keys()

    def lock(self, key: str, seconds: float) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_dir, key, seconds)
