"""lyra_governor.chain, the audit chain's pure arithmetic (mirrors test_money/test_phases/test_risk):
what a record's hash covers and the canonical JSON it is computed over."""

from __future__ import annotations

import json
from decimal import Decimal

from lyra_governor.chain import GENESIS_HASH, canonical_json, record_hash
from lyra_governor.models import Side


def test_canonical_json_is_one_text_whatever_the_key_order() -> None:
    a = canonical_json({"b": 1, "a": {"d": 2, "c": [3, "é"]}})
    assert a == canonical_json({"a": {"c": [3, "é"], "d": 2}, "b": 1})
    assert a == '{"a":{"c":[3,"é"],"d":2},"b":1}'  # no spaces, UTF-8 kept as it is


def test_decimals_and_enums_are_written_as_strings_exactly() -> None:
    text = canonical_json({"price": Decimal("60000.10"), "side": Side.BUY})
    assert json.loads(text) == {"price": "60000.10", "side": "BUY"}


def test_a_record_hash_covers_every_field_and_the_previous_hash() -> None:
    fields = (7, 1_800_000_000_000_000, "bot-1", "decision", '{"a":1}', GENESIS_HASH)
    base = record_hash(*fields)
    assert len(base) == 64 and base == record_hash(*fields)
    for i, other in enumerate((8, 1_800_000_000_000_001, "bot-2", "order_event", '{"a":2}', "f" * 64)):
        changed = list(fields)
        changed[i] = other
        assert record_hash(*changed) != base, f"field {i} is not covered"
    # the separator keeps fields apart: moving a character from one field to the next changes the hash
    assert record_hash(7, 1, "ab", "c", "{}", GENESIS_HASH) != record_hash(7, 1, "a", "bc", "{}", GENESIS_HASH)
