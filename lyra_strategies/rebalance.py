"""Portfolio rebalancing (pure): target weights, a drift band, a minimum trade, fees."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Trade:
    asset: str
    side: str  # "BUY" | "SELL" of `asset` against the quote asset
    value_usd: Decimal


def plan(
    values_usd: dict[str, Decimal],
    targets: dict[str, Decimal],
    drift_band: Decimal,
    min_trade_usd: Decimal,
    fee: Decimal = Decimal("0.001"),
) -> list[Trade]:
    """Trades that bring each asset back to its target weight when it drifted beyond the band.

    `targets` are weights summing to 1 over the assets in `values_usd` (the quote asset
    included). Trades smaller than `min_trade_usd`, or whose fee exceeds the drift they fix,
    are skipped. Sells come first so their proceeds fund the buys.
    """
    total = sum(values_usd.values(), Decimal(0))
    if total <= 0 or abs(sum(targets.values(), Decimal(0)) - 1) > Decimal("0.0001"):
        return []
    trades: list[Trade] = []
    for asset, target in targets.items():
        current = values_usd.get(asset, Decimal(0)) / total
        drift = current - target
        if abs(drift) <= drift_band:
            continue
        value = abs(drift) * total
        if value < min_trade_usd or value * fee >= abs(drift) * total:
            continue
        trades.append(Trade(asset, "SELL" if drift > 0 else "BUY", value.quantize(Decimal("0.01"))))
    return sorted(trades, key=lambda t: t.side != "SELL")
