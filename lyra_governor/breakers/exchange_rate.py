"""An exchange-wide order-rate budget: exchanges rate-limit the account, not the bot, so the
orders of every bot on one exchange count together (the governor reads the count from the
store, where it survives restarts)."""

from __future__ import annotations

from lyra_governor.breakers import Action, Trip
from lyra_governor.models import DenialCode


def check_exchange_rate(exchange: str, orders_in_window: int, max_orders: int, window_s: float) -> Trip | None:
    """Pure: a trip when `max_orders` orders were already allowed on `exchange` (all bots)
    within the last `window_s` seconds."""
    if orders_in_window < max_orders:
        return None
    return Trip(
        DenialCode.EXCHANGE_ORDER_RATE,
        Action.DENY,
        exchange,
        f"{orders_in_window} orders from all bots on {exchange} in the last {window_s:g} s "
        f"(limit {max_orders}, breakers.exchange_order_rate_max); slow down",
    )
