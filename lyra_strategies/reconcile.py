"""Reconciliation on start: what a governed bot does with the reservations a crash left behind.

A bot killed mid-stream (crash, `kill -9`, power loss) leaves OPEN reservations in the store
(ORPHANED once it has been silent past `risk.heartbeat_timeout_s`: still counted against every
cap; its governor takes them back, OPEN again, when it starts) for orders whose fate it never
heard: filled while it was dead, cancelled by the exchange,
still resting, or never placed at all. On start, before its strategy proposes anything, the
bot asks the exchange for its orders and fills since the oldest such reservation and settles
each reservation from the exchange's answer:

- the exchange's fills not yet in the ledger are booked (so deployed capital and the bot's
  position are the exchange's). A fill is known by the exchange's trade id (the ledger keys
  every live fill by it, `lyra_fills.trade_key`), so a fill the bot saw out of order is not
  mistaken for an earlier one it missed; only fills recorded without an id fall back to the
  order's cumulative amount;
- an order the exchange filled completes its reservation; one it cancelled or expired releases
  the rest;
- an order still resting is adopted into Hummingbot's order tracker (its known fills applied,
  so none is booked twice) and, with ``policy="cancel"`` (the default: the restarted strategy
  did not place it and would not manage it), cancelled through Hummingbot's own cancel path,
  which releases the reservation when the exchange confirms;
- a reservation with no order on the exchange was never placed: released as FAILED.

Reservations and exchange orders are matched on what the governor judged and the connector sent
(pair, side, amount, limit price, placed no earlier than the reservation): governed orders are
quantized before review (`governed._as_sent`), so both sides carry the same figures.

`plan` is pure; `BinanceSource` and `OkxSource` read the exchange through Hummingbot's own
signed REST client.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

#: an exchange order placed up to this long before its reservation's timestamp still matches
#: (the exchange's clock and ours differ by a little)
CLOCK_SLACK_S = 60.0


#: error types of a failed placement after which the exchange may hold the order all the same
#: (the request may have reached it; its answer did not reach us)
IN_DOUBT_TYPES = frozenset({"TimeoutError", "ServerDisconnectedError", "ClientPayloadError", "ClientOSError"})


def in_doubt(error_message: str | None, error_type: str | None) -> bool:
    """Whether a failed placement leaves the order's fate unknown: a 5xx answer (Hummingbot's
    REST client says "HTTP status is 5.."), a timeout or a dropped connection. A refusal (4xx,
    or a venue's error code in a 200 answer) proves the exchange has no order: not in doubt.
    Hummingbot's binance connector keeps such orders itself (exchange id UNKNOWN, then polls);
    its okx connector fails them, which is what the live check after a failure is for."""
    return "HTTP status is 5" in (error_message or "") or (error_type or "") in IN_DOUBT_TYPES


@dataclass(frozen=True)
class ExchangeTrade:
    trade_id: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    time_s: float


@dataclass(frozen=True)
class ExchangeOrder:
    client_order_id: str
    exchange_order_id: str
    trading_pair: str
    side: str  # BUY | SELL
    order_type: str  # LIMIT | LIMIT_MAKER | MARKET
    amount: Decimal
    price: Decimal
    status: str  # OPEN | FILLED | CANCELLED
    time_s: float
    trades: tuple[ExchangeTrade, ...] = ()

    @property
    def executed(self) -> Decimal:
        return sum((t.amount for t in self.trades), Decimal(0))


@dataclass
class Settlement:
    """What to do with one reservation."""

    reservation_id: str
    order: ExchangeOrder | None
    book: list[ExchangeTrade] = field(default_factory=list)  # fills the ledger does not have yet
    outcome: str = ""  # FILLED | CANCELLED | OPEN | FAILED


@dataclass
class Plan:
    settlements: list[Settlement]
    unaccounted: list[ExchangeOrder]  # resting orders no OPEN reservation of this bot explains


def applied_trades(fill_rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """The fills the ledger holds, by reservation: the exchange's trade id -> amount (fills
    recorded without a trade id are left out: `plan` counts them by amount)."""
    applied: dict[str, dict[str, Decimal]] = {}
    for row in fill_rows:
        key = str(row.get("trade_key") or "")
        if key.startswith("id:"):
            applied.setdefault(str(row["reservation_id"]), {})[key[3:]] = Decimal(row["amount"])
    return applied


def plan(
    reservations: list[dict[str, Any]],
    orders: list[ExchangeOrder],
    prefix: str = "",
    applied: Mapping[str, Mapping[str, Decimal]] | None = None,
) -> Plan:
    """Match this bot's OPEN reservations (store rows) to the exchange's orders, oldest first,
    each order to at most one reservation, and say how each reservation is settled. `applied`
    (`applied_trades`): the trade ids already in the ledger per reservation; a trade is booked
    unless its id is there or a fill recorded without an id already counts its amount."""
    free = sorted(orders, key=lambda o: (o.time_s, o.exchange_order_id))
    settlements = []
    for row in sorted(reservations, key=lambda r: (float(r["created_at"]), r["reservation_id"])):
        bound = row.get("client_order_id")
        match = next((o for o in free if bound and o.client_order_id == bound), None) or next(
            (o for o in free if _matches(row, o)), None
        )
        if match is None:
            settlements.append(Settlement(row["reservation_id"], None, outcome="FAILED"))
            continue
        free.remove(match)
        by_id = (applied or {}).get(row["reservation_id"], {})
        unkeyed = Decimal(row["filled_amount"] or 0) - sum(by_id.values(), Decimal(0))
        missing = []
        for trade in sorted(match.trades, key=lambda t: (t.time_s, t.trade_id)):
            if trade.trade_id in by_id:
                continue  # in the ledger under its own id
            if unkeyed >= trade.amount:  # counted by a fill recorded without an id
                unkeyed -= trade.amount
                continue
            missing.append(trade)
        outcome = match.status if match.status != "OPEN" else "OPEN"
        settlements.append(Settlement(row["reservation_id"], match, missing, outcome))
    unaccounted = [o for o in free if o.status == "OPEN" and o.client_order_id.startswith(prefix)]
    return Plan(settlements, unaccounted)


def strays(unaccounted: Iterable[ExchangeOrder], others: Iterable[Mapping[str, Any]]) -> list[ExchangeOrder]:
    """The resting orders that no reservation holds: of the orders this bot's own reservations
    left unexplained (`Plan.unaccounted`), those no other bot's held reservation on the market
    explains either (bound by client order id, else matched as `plan` matches, each reservation
    explaining one order). They are exposure the caps do not count: `Governor.book_stray`."""
    free = [dict(r) for r in others]
    found = []
    for order in sorted(unaccounted, key=lambda o: (o.time_s, o.exchange_order_id)):
        held = next((r for r in free if r.get("client_order_id") == order.client_order_id), None) or next(
            (r for r in free if not r.get("client_order_id") and _matches(r, order)), None
        )
        if held is None:
            found.append(order)
        else:
            free.remove(held)
    return found


def _matches(row: dict[str, Any], order: ExchangeOrder) -> bool:
    return (
        order.trading_pair == row["trading_pair"]
        and order.side == row["side"]
        and order.amount == Decimal(row["amount"])
        and (order.order_type == "MARKET" or order.price == Decimal(row["price"]))
        and order.time_s >= float(row["created_at"]) - CLOCK_SLACK_S
    )


BINANCE_PAGE = 1000  # /allOrders and /myTrades answer at most 1,000 records a call
BINANCE_WINDOW_MS = 24 * 3600 * 1000  # and a startTime..endTime window at most 24 h wide
BINANCE_MAX_CALLS = 60  # past that the read fails (nothing is proposed) rather than guess


async def binance_pages(connector: Any, path: str, symbol: str, start_ms: int, cursor: str, key: str,
                        limit_id: str) -> list[dict[str, Any]]:  # fmt: skip
    """Every record of /allOrders or /myTrades from `start_ms` on, as Binance spot lets them be
    read (its REST docs): a time window is at most 24 h wide, so the windows from `start_ms` are
    asked in turn until one holds a record; from its first record on, the id cursor (`cursor` =
    ``orderId`` or ``fromId``: records from that id on, ascending) reads the rest 1,000 at a
    time until a page comes back short. More than `BINANCE_MAX_CALLS` calls raise OSError."""
    base = {"symbol": symbol, "limit": BINANCE_PAGE}
    end_ms = int(time.time() * 1000) + int(CLOCK_SLACK_S * 1000)
    records: list[dict[str, Any]] = []
    window = start_ms
    for _ in range(BINANCE_MAX_CALLS):
        if records:  # the cursor from the last record read
            params: dict[str, Any] = base | {cursor: int(records[-1][key]) + 1}
        elif window <= end_ms:  # still looking for the first record, one 24 h window at a time
            params = base | {"startTime": window, "endTime": window + BINANCE_WINDOW_MS - 1}
            window += BINANCE_WINDOW_MS
        else:
            return records
        page = await connector._api_get(path_url=path, params=params, is_auth_required=True, limit_id=limit_id)
        records += page
        if records and cursor in params and len(page) < BINANCE_PAGE:
            return records
    raise OSError(f"more than {BINANCE_MAX_CALLS} calls to read {path} since the oldest reservation")


#: Binance order states as reconciliation sees them (anything else ended without filling fully)
BINANCE_STATUS = MappingProxyType(
    {"NEW": "OPEN", "PARTIALLY_FILLED": "OPEN", "PENDING_NEW": "OPEN", "FILLED": "FILLED"}
)


class BinanceSource:
    """Binance spot's orders and fills since a time, through the connector's signed client."""

    async def orders(self, connector: Any, trading_pair: str, since_s: float) -> list[ExchangeOrder]:
        symbol = await connector.exchange_symbol_associated_to_pair(trading_pair=trading_pair)
        start_ms = int(since_s * 1000)
        raw_orders = await binance_pages(connector, "/allOrders", symbol, start_ms, "orderId", "orderId", "/order")
        raw_open = await connector._api_get(  # resting orders of any age: a stray may predate `since`
            path_url="/openOrders", params={"symbol": symbol}, is_auth_required=True, limit_id="/order",
        )  # fmt: skip
        known = {str(o["orderId"]) for o in raw_orders}
        raw_orders = [*raw_orders, *(o for o in raw_open if str(o["orderId"]) not in known)]
        raw_trades = await binance_pages(connector, "/myTrades", symbol, start_ms, "fromId", "id", "/myTrades")
        trades: dict[str, list[ExchangeTrade]] = {}
        for t in raw_trades:
            trades.setdefault(str(t["orderId"]), []).append(
                ExchangeTrade(str(t["id"]), Decimal(t["qty"]), Decimal(t["price"]), Decimal(t["commission"]),
                              str(t["commissionAsset"]), float(t["time"]) / 1000)
            )  # fmt: skip
        return [
            ExchangeOrder(
                client_order_id=str(o["clientOrderId"]),
                exchange_order_id=str(o["orderId"]),
                trading_pair=trading_pair,
                side=str(o["side"]),
                order_type=str(o["type"]),
                amount=Decimal(o["origQty"]),
                price=Decimal(o["price"]),
                status=BINANCE_STATUS.get(str(o["status"]), "CANCELLED"),
                time_s=float(o["time"]) / 1000,
                trades=tuple(trades.get(str(o["orderId"]), ())),
            )
            for o in raw_orders
        ]


#: OKX order states as reconciliation sees them
OKX_STATUS = MappingProxyType({"live": "OPEN", "partially_filled": "OPEN", "filled": "FILLED"})
OKX_ORDER_TYPE = MappingProxyType({"limit": "LIMIT", "post_only": "LIMIT_MAKER", "market": "MARKET"})
OKX_PAGE = 100  # OKX answers at most 100 orders or fills per call (its `limit`: default and maximum)
OKX_MAX_PAGES = 50  # 5,000 records of one kind: past that the read fails (nothing is proposed) rather than guess


class OkxSource:
    """OKX spot's orders (pending, and the history since a time) and fills since that time,
    through the connector's signed client, every page of each. OKX charges fees as negative
    amounts; here a fee is what was paid (positive)."""

    async def orders(self, connector: Any, trading_pair: str, since_s: float) -> list[ExchangeOrder]:
        inst = await connector.exchange_symbol_associated_to_pair(trading_pair=trading_pair)
        begin = str(int(since_s * 1000))
        order_limit, fills_limit = "/api/v5/trade/order", "/api/v5/trade/fills"  # Hummingbot's own limits
        base = {"instType": "SPOT", "instId": inst, "limit": str(OKX_PAGE)}
        pending = await okx_pages(connector, "/api/v5/trade/orders-pending", base, order_limit, "ordId")
        history = await okx_pages(connector, "/api/v5/trade/orders-history", base | {"begin": begin}, order_limit,
                                  "ordId")  # fmt: skip
        fills = await okx_pages(connector, fills_limit, base | {"begin": begin}, fills_limit, "billId")
        trades: dict[str, list[ExchangeTrade]] = {}
        for t in fills:
            trades.setdefault(str(t["ordId"]), []).append(
                ExchangeTrade(str(t["tradeId"]), Decimal(t["fillSz"]), Decimal(t["fillPx"]), -Decimal(t["fee"]),
                              str(t["feeCcy"]), float(t["ts"]) / 1000)
            )  # fmt: skip
        seen: dict[str, ExchangeOrder] = {}
        for o in [*pending, *history]:
            seen[str(o["ordId"])] = ExchangeOrder(
                client_order_id=str(o["clOrdId"]),
                exchange_order_id=str(o["ordId"]),
                trading_pair=trading_pair,
                side=str(o["side"]).upper(),
                order_type=OKX_ORDER_TYPE.get(str(o["ordType"]), "LIMIT"),
                amount=Decimal(o["sz"]),
                price=Decimal(o["px"] or 0),
                status=OKX_STATUS.get(str(o["state"]), "CANCELLED"),
                time_s=float(o["cTime"]) / 1000,
                trades=tuple(trades.get(str(o["ordId"]), ())),
            )
        return list(seen.values())


async def okx_pages(connector: Any, path: str, params: dict[str, str], limit_id: str, key: str) -> list[dict[str, Any]]:
    """Every record of one OKX list endpoint, page by page, as OKX pages them (and ccxt's
    okx.py asks: `after`, `before`, `limit`): a page holds at most `OKX_PAGE` records, newest
    first; the next is asked with ``after`` = the oldest `key` (ordId, or billId for fills) of
    the last, and the list ends at a page shorter than a full one. A refusal, or more than
    `OKX_MAX_PAGES` pages, raises OSError: reconciliation fails and nothing is proposed."""
    records: list[dict[str, Any]] = []
    after: dict[str, str] = {}
    for _ in range(OKX_MAX_PAGES):
        answer = await connector._api_get(path_url=path, params=params | after, is_auth_required=True,
                                          limit_id=limit_id)  # fmt: skip
        if str(answer.get("code")) != "0":
            raise OSError(f"OKX refused the reconciliation read: {answer.get('code')} {answer.get('msg')}")
        page = answer.get("data") or []
        records += page
        if len(page) < OKX_PAGE:
            return records
        after = {"after": str(min(int(r[key]) for r in page))}
    raise OSError(f"more than {OKX_MAX_PAGES} pages of {path} since the oldest reservation")


#: the exchanges reconciliation can read, by Hummingbot connector name
SOURCES: Mapping[str, BinanceSource | OkxSource] = MappingProxyType({"binance": BinanceSource(), "okx": OkxSource()})
