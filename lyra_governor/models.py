"""The governor's vocabulary: pydantic v2 models shared by every part of Lyra.

Why these shapes:
- `OrderProposal` accepts any Decimal, NaN and infinity included. Rejecting bad numbers is the
  governor's job, so that a bad price becomes an audited denial with a named code instead of a
  validation exception inside a strategy's tick.
- `Vote` is strict: it is parsed from model output, which is untrusted text. Anything that does
  not validate counts as "no answer", never as a guess.
- Every denial has a `DenialCode` (machine-readable) and a human sentence, in the manner of
  NautilusTrader's `OrderDenied`.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lyra_governor.market_context import MarketContext  # pure: imports no other Lyra module
from lyra_governor.sentiment import SentimentSummary  # imports no other Lyra module


def new_id(prefix: str) -> str:
    """A short, unique, sortable-enough identifier such as ``res-3f2a9c0d1b4e``."""
    return f"{prefix}-{os.urandom(6).hex()}"  # 48 random bits, as uuid4().hex[:12] had, at a fifth of its cost


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"
    MARKET = "MARKET"


class RiskLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class VoteDecision(StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    ABSTAIN = "ABSTAIN"


class Verdict(StrEnum):
    """Outcome of a council consultation or a commissioning phase, most permissive first."""

    PROCEED = "PROCEED"
    PROCEED_WITH_CAUTION = "PROCEED_WITH_CAUTION"
    HOLD_OR_INVESTIGATE = "HOLD_OR_INVESTIGATE"
    GRADUAL_STOP = "GRADUAL_STOP"
    ABORT = "ABORT"

    @property
    def permits_new_exposure(self) -> bool:
        return self in (Verdict.PROCEED, Verdict.PROCEED_WITH_CAUTION)


class TradingState(StrEnum):
    """The governor's trading state (cf. NautilusTrader's RiskEngine).

    ACTIVE: orders inside limits may pass. REDUCING: gradual stop, only orders that reduce
    exposure pass. HALTED: nothing passes until an operator resumes.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class DecisionStatus(StrEnum):
    ALLOWED = "ALLOWED"
    DENIED = "DENIED"
    PENDING = "PENDING"


class DenialCode(StrEnum):
    """Why an order was not allowed. Stable strings: dashboards and scripts match on them."""

    HALTED = "HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    PHASE_FORBIDS_ORDERS = "PHASE_FORBIDS_ORDERS"
    LIVE_NOT_PERMITTED = "LIVE_NOT_PERMITTED"
    PAPER_NOT_PERMITTED = "PAPER_NOT_PERMITTED"
    UNKNOWN_EXCHANGE = "UNKNOWN_EXCHANGE"
    UNKNOWN_PAIR = "UNKNOWN_PAIR"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_MID_PRICE = "INVALID_MID_PRICE"
    STALE_PRICE = "STALE_PRICE"
    FX_RATE_MISSING = "FX_RATE_MISSING"
    PRICE_COLLAR = "PRICE_COLLAR"
    MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
    ORDER_RATE = "ORDER_RATE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    NO_MANDATE = "NO_MANDATE"
    COUNCIL_REFUSED = "COUNCIL_REFUSED"
    EXCHANGE_CAP = "EXCHANGE_CAP"
    TOTAL_CAP = "TOTAL_CAP"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    STORE_BUSY = "STORE_BUSY"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # guarantees (issue 14): price and market-data sanity
    LIMIT_PRICE_MISSING = "LIMIT_PRICE_MISSING"
    REFERENCE_WARMUP = "REFERENCE_WARMUP"
    MID_MISMATCH = "MID_MISMATCH"
    FX_RATE_OUT_OF_BAND = "FX_RATE_OUT_OF_BAND"
    MAX_ORDER_QUANTITY = "MAX_ORDER_QUANTITY"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    EXCHANGE_ORDER_RATE = "EXCHANGE_ORDER_RATE"
    # guarantees (issue 14): circuit breakers (lyra_governor/breakers)
    BREAKER_REJECT_STORM = "BREAKER_REJECT_STORM"
    BREAKER_DAILY_LOSS = "BREAKER_DAILY_LOSS"
    BREAKER_DRAWDOWN = "BREAKER_DRAWDOWN"
    # guarantees (issue 14): the order store's own (core)
    BOT_REDUCE_ONLY = "BOT_REDUCE_ONLY"
    CLOSE_EXCEEDS_POSITION = "CLOSE_EXCEEDS_POSITION"
    VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"
    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"


@dataclass(frozen=True)
class Denial:
    """Why one check refuses a proposal: a machine-readable code and a sentence naming the fix.

    The one shape of a refusal: every check returns `Denial | None`, and the governor's one
    deny path turns a `Denial` into an audited decision. `status` is DENIED, or PENDING for a
    refusal that a later tick lifts by itself (no mandate yet: one has been requested).
    """

    code: DenialCode
    message: str
    status: DecisionStatus = DecisionStatus.DENIED


class ReservationStatus(StrEnum):
    """A reservation's life: OPEN until its order ends; the other states are terminal and a
    reservation never leaves one (the order store enforces it under the write lock)."""

    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    # A silent bot's reservation: its order may still be live, so its capital stays counted until
    # the bot comes back (OPEN again) or an operator releases it (EXPIRED). Not terminal.
    ORPHANED = "ORPHANED"

    @property
    def terminal(self) -> bool:
        return self not in (ReservationStatus.OPEN, ReservationStatus.ORPHANED)


class OrderProposal(BaseModel):
    """An order a strategy wants to place, handed to `Governor.review` before it is sent.

    `connector` is Hummingbot's connector name: ``binance`` is live, ``binance_paper_trade``
    and any name ending in ``_paper_trade`` or registered as paper in config are paper.
    `mid_price` and `mid_price_ts` come from the strategy's own order book, so the governor can
    refuse prices far from the market and books that stopped updating.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=True)

    proposal_id: str = Field(default_factory=lambda: new_id("prp"))
    bot_id: str = Field(min_length=1, max_length=128)
    strategy: str = Field(default="unknown", max_length=128)
    connector: str = Field(min_length=1, max_length=64)
    trading_pair: str = Field(min_length=1, max_length=64)
    side: Side
    order_type: OrderType = OrderType.LIMIT
    amount: Decimal
    price: Decimal | None = None
    mid_price: Decimal
    mid_price_ts: float
    reduce_only: bool = False
    client_order_id: str | None = None
    note: str = Field(default="", max_length=2000)

    @property
    def base(self) -> str:
        return self.trading_pair.split("-", 1)[0]

    @property
    def quote(self) -> str:
        parts = self.trading_pair.split("-", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def reference_price(self) -> Decimal:
        """The price the notional is computed at: the limit price, or mid for market orders."""
        return self.price if self.price is not None else self.mid_price


class Order(NamedTuple):
    """The fields of an `OrderProposal` that a review reads, copied once (`of`) from the
    model's own ``__dict__`` (where pydantic keeps the validated values). Why: a pydantic
    model's field costs ~400 instructions to read (`BaseModel.__getattr__` puts every read
    through CPython's slot_tp_getattr_hook), a tuple's ~40, and one allowed review reads the
    proposal's fields ~60 times. The same values, the same objects: only the reads are cheaper."""

    proposal_id: str
    bot_id: str
    strategy: str
    connector: str
    trading_pair: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    mid_price: Decimal
    mid_price_ts: float
    reduce_only: bool
    client_order_id: str | None

    @classmethod
    def of(cls, proposal: OrderProposal) -> Order:
        return cls._make(_order_fields(proposal.__dict__))

    @property
    def base(self) -> str:
        """`OrderProposal.base`: ``BTC`` of ``BTC-USDT``."""
        return self.trading_pair.split("-", 1)[0]

    @property
    def quote(self) -> str:
        """`OrderProposal.quote`: ``USDT`` of ``BTC-USDT`` (empty without a dash)."""
        parts = self.trading_pair.split("-", 1)
        return parts[1] if len(parts) == 2 else ""


_order_fields = operator.itemgetter(*Order._fields)


RoleName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Vote(BaseModel):
    """One council member's answer. Strict: model output that does not fit is no answer."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    decision: VoteDecision
    risk: RiskLevel
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    rationale: str = Field(max_length=600)


class Ballot(BaseModel):
    """A vote with who cast it, how long it took and what it cost; `vote` is None for no answer."""

    model_config = ConfigDict(frozen=True)

    role: RoleName
    model: str
    weight: float = Field(ge=0.0)
    vote: Vote | None = None
    error: str | None = None
    # Why there is no vote, as a word: billing (402), model_gone (404), auth, rate_limited,
    # timeout, malformed, refused, budget, network, http, not_awaited, voter_bug.
    error_kind: str | None = None
    latency_s: float = 0.0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def answered(self) -> bool:
        return self.vote is not None


class ConsensusResult(BaseModel):
    """The council's aggregate answer on one question."""

    model_config = ConfigDict(frozen=True)

    consensus_id: str = Field(default_factory=lambda: new_id("cns"))
    phase: int = Field(ge=1, le=5)
    verdict: Verdict
    agreement: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    response_rate: float = Field(ge=0.0, le=1.0)
    mean_confidence: float = Field(ge=0.0, le=1.0)
    size_scale: float = Field(default=1.0, ge=0.0, le=1.0)
    # Fewer than `quorum` (share of voter weight) answered: never PROCEED, reported as degraded.
    degraded: bool = False
    quorum: float = Field(default=0.0, ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    ballots: list[Ballot] = Field(default_factory=list)
    latency_s: float = 0.0
    cost_usd: float = 0.0
    decided_at: float = 0.0

    @property
    def no_answer(self) -> dict[str, int]:
        """Voters without an answer, by why (billing, model_gone, timeout, ...)."""
        out: dict[str, int] = {}
        for b in self.ballots:
            if b.vote is None:
                kind = b.error_kind or "unknown"
                out[kind] = out.get(kind, 0) + 1
        return out


class Mandate(BaseModel):
    """An envelope the council approved: orders inside it pass without asking again.

    Expiry is at most 15 minutes, aligned with the AI health checkpoint, so a stale approval can
    never outlive the next council check.
    """

    model_config = ConfigDict(frozen=True)

    mandate_id: str = Field(default_factory=lambda: new_id("mnd"))
    consensus_id: str
    connector: str
    trading_pair: str
    sides: frozenset[Side]
    max_order_notional_usd: Decimal = Field(ge=0)
    max_total_notional_usd: Decimal = Field(ge=0)
    price_low: Decimal
    price_high: Decimal
    size_scale: float = Field(default=1.0, ge=0.0, le=1.0)
    issued_at: float
    expires_at: float
    verdict: Verdict = Verdict.PROCEED

    def covers(self, proposal: OrderProposal, notional_usd: Decimal, now: float) -> bool:
        """True when this envelope admits the proposal (pure: no I/O, microseconds). Asked on
        every review: both models' fields are read as the items of their ``__dict__`` (where
        pydantic keeps them), ~10 times cheaper than the attributes (see `Order`)."""
        m, p = self.__dict__, proposal.__dict__
        price = p["price"] if p["price"] is not None else p["mid_price"]  # `reference_price`
        return (
            now < m["expires_at"]
            and p["connector"] == m["connector"]
            and p["trading_pair"] == m["trading_pair"]
            and p["side"] in m["sides"]
            and notional_usd <= m["max_order_notional_usd"]
            and m["price_low"] <= price <= m["price_high"]
        )


class Decision(BaseModel):
    """What `Governor.review` answers. Only ``allowed`` decisions may be sent to an exchange."""

    model_config = ConfigDict(frozen=True)

    proposal_id: str
    status: DecisionStatus
    code: DenialCode | None = None
    message: str = ""
    notional_usd: Decimal = Decimal(0)
    reservation_id: str | None = None
    mandate_id: str | None = None
    consensus_id: str | None = None
    size_scale: float = 1.0
    audit_seq: int | None = None

    @property
    def allowed(self) -> bool:
        return self.status is DecisionStatus.ALLOWED


class OrderEventKind(StrEnum):
    CREATED = "CREATED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"


class OrderEvent(BaseModel):
    """An exchange event for an order the governor allowed, forwarded by the strategy.

    Like `OrderProposal`, any Decimal is accepted (NaN included): an impossible event is the
    order store's to record as an anomaly, not a validation error inside a strategy's callback."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=True)

    kind: OrderEventKind
    reservation_id: str
    client_order_id: str | None = None
    filled_amount: Decimal = Decimal(0)
    fill_price: Decimal = Decimal(0)
    fee_usd: Decimal = Decimal(0)
    timestamp: float | None = None
    trade_id: str | None = Field(default=None, max_length=128)  # the exchange's: a fill is applied once
    detail: dict[str, Any] = Field(default_factory=dict)


STRAY_PREFIX = "stray:"  # a stray order's reservation id: stray:<connector>:<exchange order id>


class StrayOrder(BaseModel):
    """An order the exchange reports resting that no reservation holds (placed before a crash,
    by hand, or released while it still rested), found by the strategy's reconciliation and
    booked with `Governor.book_stray`. Finite positive figures only: one that cannot be valued
    cannot be counted, and the reconciliation that found it fails (nothing is proposed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connector: str
    trading_pair: str
    side: Side
    amount: Decimal = Field(gt=0)
    executed: Decimal = Field(default=Decimal(0), ge=0)  # filled before it was found
    price: Decimal = Field(gt=0)
    client_order_id: str = Field(max_length=128)
    exchange_order_id: str = Field(max_length=128)


class MarketSnapshot(BaseModel):
    """What a strategy saw of one market on its last tick; the council's market inputs.

    Strategies push it with `Governor.observe_market`; the governor keeps the latest per
    (connector, pair) in memory and hands it to the council when it asks for a mandate.
    """

    model_config = ConfigDict(frozen=True)

    connector: str
    trading_pair: str
    timestamp: float
    mid_price: Decimal
    best_bid: Decimal | None = None
    best_ask: Decimal | None = None
    spread_pct: float = 0.0
    volatility_pct: float = 0.0
    depth_usd: float = 0.0
    data_age_s: float = 0.0
    clock_skew_s: float = 0.0
    price_decimals: int = 8


class CouncilContext(BaseModel):
    """Everything the council judges, assembled by the governor or the commissioning runner.

    Free text (`note`, pair names, strategy text) reaches models only as quoted data.
    """

    model_config = ConfigDict(frozen=True)

    phase: int = Field(ge=1, le=5)
    question: str = "mandate"  # mandate | order | commission | health
    proposal: OrderProposal | None = None
    market: MarketSnapshot | None = None
    cap_usd: Decimal = Decimal(0)
    deployed_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    drawdown_pct: float = 0.0
    error_rate: float = 0.0
    reject_rate: float = 0.0
    rate_samples: int | None = None  # decisions behind the two rates (None: unknown, e.g. a test)
    alerts: list[str] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)
    note: str = ""
    now: float = 0.0  # the caller's clock (simulated in a paper replay): mandates expire on it
    # Indicators and the strategy's own fills/PnL (lyra_governor.market_context): data for the voters.
    market_context: MarketContext | None = None
    sentiment: SentimentSummary | None = None  # news for the proposal's base asset (lyra_governor.sentiment)
