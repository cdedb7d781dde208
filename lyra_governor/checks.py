"""The review pipeline: named checks in the order `Governor.review` runs them.

Each check reads the proposal and what the checks before it established (`Review`), and
returns None to pass it on or a `Denial` to stop. The pure arithmetic of each check lives in
`risk` and `phases`; this module only feeds them the governor's facts (settings, the markets
it has seen, this bot's orders, the council's mandates). The capital reservation that follows
the last check is `reservation.reserve`: it is the one step that writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _quote

from lyra_governor import phases, risk
from lyra_governor.bot_orders import BotOrders
from lyra_governor.breakers.board import BreakerBoard
from lyra_governor.config import Settings
from lyra_governor.ladder import LadderState
from lyra_governor.ledger import Exposure
from lyra_governor.mandate_provider import MandateProvider
from lyra_governor.market_watch import MarketWatch
from lyra_governor.models import (
    CouncilContext,
    DecisionStatus,
    Denial,
    DenialCode,
    Mandate,
    Order,
    OrderProposal,
    Side,
    TradingState,
)


@dataclass(slots=True)
class Review:
    """One proposal and the facts the checks establish about it, in order. The checks read the
    proposal's fields from `o`, its plain copy (`models.Order`: a tenth of a model field's read)."""

    p: OrderProposal
    now: float
    state: LadderState
    exchange: str
    bot_reduce_only: str | None = None  # why this bot may only reduce its positions (the store's)
    rate: Decimal = Decimal(0)  # USD per unit of the quote currency
    price: Decimal = Decimal(0)  # the valuation price (a MARKET order's worst price), from `valued`
    notional_usd: Decimal = Decimal(0)  # 0 until `valued`
    closing: bool = False  # a reduce-only order that reduces this bot's position: no mandate
    mandate: Mandate | None = None
    o: Order = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.o = Order.of(self.p)

    @property
    def book(self) -> str:
        book = self.state.book
        assert book is not None  # phases 1-2 are refused by `phase_permits`
        return book


def halted(reason: str) -> str:
    return f"trading is halted ({reason}); an operator must resume"


def reducing(reason: str) -> str:
    return f"gradual stop in force ({reason}); only orders that reduce exposure pass"


def bot_reducing(bot_id: str, reason: str) -> str:
    return (
        f"bot {bot_id} may only reduce its positions ({reason}); check it, then `lyra-governor resume --bot {bot_id}`"
    )


MAX_ORDER_VALUE_USD = Decimal(10**12)  # beyond any cap Lyra has: a value this large is a broken number
MICRO = Decimal("0.000001")  # an audit record's USD amounts are shown to the micro-dollar
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # what every exchange Lyra trades accepts
# read on every review: an enum member read through its class costs ~100 ns (EnumType.__getattr__ in 3.11)
_HALTED, _REDUCING = TradingState.HALTED, TradingState.REDUCING


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings the checks read on every review, as plain attributes, taken once per
    `Settings` object (`Checks.use`): a pydantic section's field costs ~400 instructions to
    read, and `settings.risk.x` two of them. Settings are replaced, never edited in place
    (`Governor.settings`)."""

    price_collar_pct: float
    stale_price_s: float
    future_tolerance_s: float
    reference_min_history_s: float
    max_order_notional_usd: Decimal
    order_rate_window_s: float
    order_rate_max: int
    max_open_orders: int
    close_tolerance: Decimal  # 1 + close_tolerance_pct / 100
    pairs: dict[str, list[str]]  # exchange -> its configured pairs
    exchange_order_rate_window_s: float  # breakers': the exchange-wide budget `reservation.reserve` checks
    exchange_order_rate_max: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        risk_ = settings.risk
        return cls(
            price_collar_pct=risk_.price_collar_pct,
            stale_price_s=risk_.stale_price_s,
            future_tolerance_s=risk_.future_tolerance_s,
            reference_min_history_s=risk_.reference_min_history_s,
            max_order_notional_usd=risk_.max_order_notional_usd,
            order_rate_window_s=risk_.order_rate_window_s,
            order_rate_max=risk_.order_rate_max,
            max_open_orders=risk_.max_open_orders,
            close_tolerance=risk.tolerance_factor(risk_.close_tolerance_pct),
            pairs={name: config.pairs for name, config in settings.exchanges.items()},
            exchange_order_rate_window_s=settings.breakers.exchange_order_rate_window_s,
            exchange_order_rate_max=settings.breakers.exchange_order_rate_max,
        )


@dataclass(eq=False)
class Checks:
    """The named checks, bound to one governor's facts; `pipeline` is their order."""

    settings: Settings
    watch: MarketWatch
    orders: BotOrders
    mandates: MandateProvider
    breakers: BreakerBoard
    council_context: Callable[[Review], CouncilContext]
    limits: Limits = field(init=False, repr=False)  # `settings`' (`use`)
    pipeline: tuple[Callable[[Review], Denial | None], ...] = field(init=False, repr=False)

    def use(self, settings: Settings) -> None:
        """New settings, and the limits the checks read of them."""
        self.settings, self.limits = settings, Limits.of(settings)

    def __post_init__(self) -> None:
        self.use(self.settings)
        self.pipeline = (
            self.trading_state,
            self.phase_permits,
            self.inputs,
            self.valued,
            self.collar,
            self.reference,
            self.notional,
            self.order_breakers,
            self.throttle,
            self.close_path,
            self.mandate,
        )

    def trading_state(self, r: Review) -> Denial | None:
        """Halted: nothing passes. Gradual stop: only orders flagged reduce-only go on."""
        state = r.state.trading_state
        if state is _HALTED:
            return Denial(DenialCode.HALTED, halted(r.state.reason))
        if state is _REDUCING and not r.o.reduce_only:
            return Denial(DenialCode.REDUCE_ONLY, reducing(r.state.reason))
        if r.bot_reduce_only is not None and not r.o.reduce_only:
            return Denial(DenialCode.BOT_REDUCE_ONLY, bot_reducing(r.o.bot_id, r.bot_reduce_only))
        return None

    def phase_permits(self, r: Review) -> Denial | None:
        return phases.connector_denial(r.state.phase, Settings.is_paper(r.o.connector))

    def inputs(self, r: Review) -> Denial | None:
        """Finite positive numbers, a known pair, a LIMIT with its own price, a fresh book
        (neither stale nor stamped in the future), a client order id an exchange would take."""
        o, limits = r.o, self.limits
        pairs = limits.pairs.get(r.exchange)
        denial = risk.check_inputs(o, pairs, r.now, limits.stale_price_s, limits.future_tolerance_s)
        cid = o.client_order_id
        if denial is None and cid is not None and not CLIENT_ORDER_ID.fullmatch(cid):
            shown = cid[:24] + ("..." if len(cid) > 24 else "")
            denial = Denial(
                DenialCode.INVALID_CLIENT_ORDER_ID,
                f"client order id {shown!r} ({len(cid)} characters) must be 1-64 letters, digits or ._:-",
            )
        return denial

    def valued(self, r: Review) -> Denial | None:
        """The order's USD value: amount x price x the quote currency's USD rate (trusted only
        within the FX band). A MARKET order is valued at its worst price (mid plus the collar on
        the side it crosses)."""
        o = r.o
        quote = o.quote
        rate = self.watch.usd_per_quote(quote)
        if rate is None:
            missing = f"no USD rate for {quote}; add fx_usd.{quote} to the config"
            return Denial(DenialCode.FX_RATE_MISSING, missing)
        denial = self.watch.fx_denial(quote)
        if denial is not None:
            return denial
        collar_pct = self.limits.price_collar_pct
        r.rate = rate
        r.price = risk.valuation_price(o, collar_pct)
        notional = o.amount * risk.notional_price(o, collar_pct) * rate
        if not notional.is_finite() or notional > MAX_ORDER_VALUE_USD:
            return Denial(
                DenialCode.VALUE_OUT_OF_RANGE,
                f"amount {o.amount:.6g} at {r.price:.6g} is worth {notional:.6g} USD, beyond any order Lyra can "
                "place; check the order's amount and price",
            )
        r.notional_usd = notional
        return None

    def collar(self, r: Review) -> Denial | None:
        """The order's price within the collar of the proposal's mid."""
        return risk.check_collar(r.price, r.o.mid_price, None, self.limits.price_collar_pct)

    def reference(self, r: Review) -> Denial | None:
        """What the governor itself saw: enough history (else the order waits, PENDING), its
        last mid agrees with the proposal's, no flash move against the time-weighted reference.
        A reduce-only close skips it: a stop-loss fires exactly when the market jumps, and
        refusing it then would trap the position (its price is still collared)."""
        o = r.o
        if o.reduce_only:
            return None
        limits = self.limits
        denial = risk.check_reference(
            o,
            self.watch.history(o.connector, o.trading_pair),
            r.now,
            limits.reference_min_history_s,
            limits.stale_price_s,
            limits.price_collar_pct,
        )
        if denial is not None and denial.code is DenialCode.REFERENCE_WARMUP:  # a wait, not a refusal
            return Denial(denial.code, denial.message, DecisionStatus.PENDING)
        return denial

    def notional(self, r: Review) -> Denial | None:
        return risk.check_notional(r.notional_usd, self.limits.max_order_notional_usd)

    def order_breakers(self, r: Review) -> Denial | None:
        """Quantity in base units, this bot's rejection-storm block, duplicate orders."""
        trip = self.breakers.pre_trade(r.o, r.exchange, r.now)
        return None if trip is None else Denial(trip.code, trip.message)

    def throttle(self, r: Review) -> Denial | None:
        """Order rate and open orders, per bot and exchange."""
        limits = self.limits
        window = self.orders.rate_window(r.exchange)
        return risk.check_rate(window, r.now, limits.order_rate_window_s, limits.order_rate_max) or (
            risk.check_open_orders(self.orders.open_count(r.exchange), limits.max_open_orders)
        )

    def close_path(self, r: Review) -> Denial | None:
        """A reduce-only order that really reduces this bot's own net position on this market
        (another bot's trades neither allow nor block it) needs no mandate and passes in a
        gradual stop. A sell that closes a long frees capital and reserves nothing; a buy that
        closes a short still adds capital to the exchange, so it must fit the caps like any
        buy. A close that would not reduce the position is refused in a gradual stop and
        otherwise judged as an ordinary order."""
        o = r.o
        if not o.reduce_only:
            return None
        key = (r.book, r.exchange, o.trading_pair)
        position = self.orders.position(key)
        closable = (position if o.side is Side.SELL else -position) - self.orders.resting_closes(key, o.side.value)
        if o.amount <= max(closable, Decimal(0)) * self.limits.close_tolerance:
            r.closing = True
            return None
        if r.state.trading_state is TradingState.REDUCING:
            held = f"long {position}" if position > 0 else f"short {-position}" if position < 0 else "flat"
            return Denial(
                DenialCode.REDUCE_ONLY,
                f"gradual stop in force ({r.state.reason}); this {o.side.value.lower()} of {o.amount} {o.base} "
                f"would not reduce this bot's position on {o.connector} {o.trading_pair} ({held})",
            )
        return None

    def mandate(self, r: Review) -> Denial | None:
        """A live council mandate covers the order with room left in it; else one is requested
        and the order waits (PENDING). The provider is asked with the proposal itself (its API)."""
        if r.closing:
            return None
        mandate = self.mandates.find(r.p, r.notional_usd, r.now)
        if mandate is not None and self.orders.mandate_used(mandate.mandate_id) + r.notional_usd > (
            mandate.max_total_notional_usd
        ):
            mandate = None
        if mandate is None:
            self.mandates.request(r.p, self.council_context(r))
            if self.mandates.per_order:
                mandate = self.mandates.find(r.p, r.notional_usd, r.now)
        if mandate is None:
            return Denial(
                DenialCode.NO_MANDATE,
                "no council mandate covers this order yet; one has been requested, propose again on a later tick",
                DecisionStatus.PENDING,
            )
        r.mandate = mandate
        return None


def cap_denial(exposure: Exposure, r: Review) -> Denial:
    """Which cap a refused reservation would have broken, in a sentence."""
    ex, notional = exposure.exchanges.get(r.exchange), r.notional_usd
    if ex is None or ex.used_usd + notional > ex.cap_usd:
        cap = ex.cap_usd if ex else Decimal(0)
        used = ex.used_usd if ex else Decimal(0)
        return Denial(
            DenialCode.EXCHANGE_CAP,
            f"{notional:.2f} USD more would put {r.exchange} at {used + notional:.2f} USD, over its "
            f"{cap:.2f} USD cap for this phase",
        )
    total = exposure.total
    return Denial(
        DenialCode.TOTAL_CAP,
        f"{notional:.2f} USD more would put the total at {total.used_usd + notional:.2f} USD, over the "
        f"{total.cap_usd:.2f} USD cap for this phase",
    )


def notional_text(notional: Decimal) -> str:
    """A notional as its audit text: to the micro-dollar where that fits the decimal context
    (28 digits), else as it is. A notional of 1E+22 (a huge proposal, denied) cannot be
    quantized to six places, and its audit record must still be written, not raise."""
    if not notional.is_finite():
        return str(notional)
    try:
        return str(notional.quantize(MICRO))
    except InvalidOperation:
        return str(notional)


def decision_payload(
    p: OrderProposal,
    status: DecisionStatus,
    code: DenialCode | None,
    message: str,
    notional: Decimal,
    reservation_id: str | None,
    r: Review | None,
) -> dict[str, object]:
    """A decision as its audit record (`r` names the mandate of an allowed one). A StrEnum's
    text is `str(member)`: its `.value` is a Python-level property (two calls, ~180 ns against
    ~30 ns), read nine times in each allowed review."""
    mandate = r.mandate if r is not None else None
    return {
        "proposal_id": p.proposal_id,
        "status": str(status),
        "code": str(code) if code else None,
        "message": message,
        "connector": p.connector,
        "pair": p.trading_pair,
        "side": str(p.side),
        "amount": str(p.amount),
        "price": str(p.price) if p.price is not None else None,
        "mid": str(p.mid_price),
        "notional_usd": notional_text(notional),
        "reduce_only": p.reduce_only,
        "strategy": p.strategy,
        "reservation_id": reservation_id,
        "mandate_id": mandate.mandate_id if mandate else None,
        "consensus_id": mandate.consensus_id if mandate else None,
    }


def decision_json(
    o: Order,
    status: DecisionStatus,
    code: DenialCode | None,
    message: str,
    notional: Decimal,
    reservation_id: str | None,
    r: Review | None,
) -> str:
    """`chain.canonical_json(decision_payload(...))` of the proposal `o` copies (`models.Order`),
    the same text, written directly: the keys are known (here in their sorted order) and every
    value is a string, a bool or None, so no dict is built, sorted and walked by the general
    encoder (~6 us against ~1.5 us). Each string is escaped by the encoder's own function
    (`json.encoder.encode_basestring`, as `ensure_ascii=False` does, ~900 instructions a call),
    but where the escaped text is known without it: a Decimal's text (digits, ``.``, ``E``, ``+``,
    ``-``, ``NaN``, ``Infinity``: nothing to escape) only quoted, an enum member's taken from
    `_QUOTED_MEMBERS`, and the strings every decision of a market repeats (connector, pair,
    strategy, mandate and consensus ids) from `_quoted` (a dict item, ~100 instructions).
    tests/unit/core/test_decision_json.py compares the two texts."""
    mandate = r.mandate if r is not None else None
    price = o.price
    price_text = f'"{price!s}"' if price is not None else "null"
    return (
        f'{{"amount":"{o.amount!s}","code":{_QUOTED_MEMBERS[code] if code else "null"},'
        f'"connector":{_QUOTED.get(o.connector) or _quoted(o.connector)},'
        f'"consensus_id":{_quoted(mandate.consensus_id) if mandate else "null"},'
        f'"mandate_id":{_quoted(mandate.mandate_id) if mandate else "null"},'
        f'"message":{_quote(message) if message else _EMPTY},'
        f'"mid":"{o.mid_price!s}","notional_usd":"{notional_text(notional)}",'
        f'"pair":{_QUOTED.get(o.trading_pair) or _quoted(o.trading_pair)},'
        f'"price":{price_text},'
        f'"proposal_id":{_quote(o.proposal_id)},"reduce_only":{"true" if o.reduce_only else "false"},'
        f'"reservation_id":{_quote(reservation_id) if reservation_id is not None else "null"},'
        f'"side":{_QUOTED_MEMBERS[o.side]},"status":{_QUOTED_MEMBERS[status]},'
        f'"strategy":{_QUOTED.get(o.strategy) or _quoted(o.strategy)}}}'
    )


# `decision_json`'s escaped texts: of each enum member a decision holds, and of the strings its
# decisions repeat (kept up to `_QUOTED_KEPT`, then forgotten all at once and kept afresh)
_QUOTED_MEMBERS: dict[str, str] = {m: _quote(str(m)) for e in (DecisionStatus, DenialCode, Side) for m in e}
_EMPTY = _quote("")
_QUOTED: dict[str, str] = {}
_QUOTED_KEPT = 4096


def _quoted(text: str) -> str:
    """`_quote(text)`, kept in `_QUOTED`."""
    quoted = _QUOTED.get(text)
    if quoted is None:
        if len(_QUOTED) >= _QUOTED_KEPT:
            _QUOTED.clear()
        quoted = _QUOTED[text] = _quote(text)
    return quoted
