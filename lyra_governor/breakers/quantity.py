"""The largest order in base units per pair (MiFID II RTS 6 art. 15 lists volume apart from
value): it holds even when a broken price makes an order's notional look small."""

from __future__ import annotations

from decimal import Decimal

from lyra_governor.breakers import Action, Trip
from lyra_governor.models import DenialCode


def check_quantity(amount: Decimal, limit: Decimal | None, pair: str) -> Trip | None:
    """Pure: a trip when `amount` exceeds the pair's limit, or when the pair has none (the
    config requires one for every configured pair; a missing one fails closed)."""
    if limit is not None and amount <= limit:
        return None
    base = pair.split("-", 1)[0]
    if limit is None:
        why = f"no breakers.max_order_amount is configured for {pair}; add breakers.max_order_amount.{base}"
    else:
        why = f"{amount} {base} is above the {limit} {base} per-order limit for {pair} (breakers.max_order_amount)"
    return Trip(DenialCode.MAX_ORDER_QUANTITY, Action.DENY, pair, why)
