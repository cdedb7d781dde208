"""The audit chain's arithmetic: canonical JSON, one record's hash, the genesis hash.

No imports from the rest of Lyra: the writer (`order_store`) and the reader (`audit`) both
build on it, so the two can never disagree on what a record's hash covers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


# `json.dumps` with any option builds a new encoder per call (a third of its cost on a decision's
# record); this one is built once with the same options, so the bytes are the same.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def canonical_json(payload: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, no spaces, Decimals and enums as strings."""
    return _ENCODER.encode(payload)


def record_hash(seq: int, ts_us: int, actor: str, event: str, payload_json: str, prev_hash: str) -> str:
    """The hash of one record: it covers every field and the previous record's hash."""
    material = "\x1f".join((str(seq), str(ts_us), actor, event, payload_json, prev_hash))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
