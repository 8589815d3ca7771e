"""The run store's cache across runs: the entries' SQL, and the encoding that keys them.

An entry is a completed result (and its shared-state delta) of task ``task_id`` of flow
``flow``, keyed by the task's fingerprint and the hash of its inputs (``input_key``), with the
run that made it and when (epoch seconds). Any run of the same flow name may reuse it while it
is younger than the task's ``ttl``.
"""

from __future__ import annotations

from typing import Any

from ..running.journal import Cached
from .codec import Types, decode, encode_for_hash
from .schema import now

__all__ = ["hash_encoding", "lookup", "keep", "clear"]


def hash_encoding(value: Any, types: Types | None = None) -> bytes | str:
    """An input value's encoding for the cache key: the codec's canonical JSON/typed encoding
    (whatever the task's serializer; typed values of the flow's declared ``types``);
    `SerializationError` when the value has none."""
    return encode_for_hash(value, types)


def lookup(store: Any, flow: str, task_id: str, fingerprint: str, input_key: str,
           ttl: float | None, serializer: str, where: str,
           types: Types | None = None) -> Cached | None:
    """The entry for these keys, younger than ``ttl`` seconds (None: any age), decoded."""
    rows = store.read("SELECT run_id, created, result, delta, codec FROM cache_entries WHERE "
                      "flow = ? AND task_id = ? AND fingerprint = ? AND input_key = ?",
                      (flow, task_id, fingerprint, input_key))
    if not rows:
        return None
    row = rows[0]
    if ttl is not None and now() - row["created"] >= ttl:
        return None
    codec = row["codec"]
    where = f"{where} (cached from run {row['run_id']!r})"
    result = decode(_text(row["result"]), codec, serializer, where, types)
    pairs = decode(_text(row["delta"]), codec, serializer, where, types) if row["delta"] else []
    return Cached(row["run_id"], result, [tuple(p) for p in pairs],
                  (row["result"], row["delta"], codec))


def _text(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def keep(db: Any, flow: str, task_id: str, fingerprint: str, input_key: str, run_id: str,
         result: Any, delta: Any, codec: str) -> None:
    """Write (or replace) an entry, inside the caller's transaction."""
    db.execute("INSERT OR REPLACE INTO cache_entries (flow, task_id, fingerprint, input_key, "
               "run_id, created, result, delta, codec) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (flow, task_id, fingerprint, input_key, run_id, now(), result, delta, codec))


def clear(store: Any, task_id: str | None = None) -> int:
    """Delete the cache entries (of one task id, when given); return how many."""
    where, params = ("", ()) if task_id is None else (" WHERE task_id = ?", (task_id,))
    with store.write() as db:
        count = db.execute("SELECT COUNT(*) FROM cache_entries" + where, params).fetchone()[0]
        db.execute("DELETE FROM cache_entries" + where, params)
    return int(count)
