"""Pure judgement: error classification, rate-limit conformance, exchange verdicts, phase
checklists and how checks and the council combine. No network, no database."""

from __future__ import annotations

import pytest
from ccxt.base import errors as ccxt_errors

from lyra_governor.commissioning.gates import GateFacts, gate_checks
from lyra_governor.commissioning.phase1 import FileMode, Phase1Facts, phase1_checks
from lyra_governor.commissioning.phase2 import (
    FAILED,
    UNSUPPORTED,
    VALIDATED,
    judge_exchange,
    rate_limit_compliance,
)
from lyra_governor.commissioning.report import Check, checks_verdict, final_verdict
from lyra_governor.config import Settings
from lyra_governor.exchanges import (
    CallOutcome,
    Credentials,
    ErrorKind,
    ExchangeFacts,
    Permissions,
    RequestStamp,
    classify,
    rewrite_urls,
    scrub,
)
from lyra_governor.models import ConsensusResult, Verdict
from lyra_governor.phases import PromotionFacts


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (ccxt_errors.AuthenticationError("bad key"), None, ErrorKind.CREDENTIALS),
        (ccxt_errors.PermissionDenied("no"), None, ErrorKind.CREDENTIALS),
        (ccxt_errors.RateLimitExceeded("429"), None, ErrorKind.RATE_LIMITED),
        (ccxt_errors.DDoSProtection("418"), None, ErrorKind.RATE_LIMITED),
        (ccxt_errors.OnMaintenance("upgrade"), None, ErrorKind.UNAVAILABLE),
        (ccxt_errors.ExchangeNotAvailable("503"), None, ErrorKind.UNAVAILABLE),
        (ccxt_errors.RequestTimeout("slow"), None, ErrorKind.TIMEOUT),
        (ccxt_errors.InvalidNonce("nonce"), None, ErrorKind.NETWORK),
        (ccxt_errors.BadSymbol("XYZ"), None, ErrorKind.BAD_SYMBOL),
        (ccxt_errors.NotSupported("no"), None, ErrorKind.NOT_SUPPORTED),
        (ccxt_errors.ExchangeError("{code: UnAuthorized}"), 401, ErrorKind.CREDENTIALS),
        (ccxt_errors.ExchangeError("busy"), 429, ErrorKind.RATE_LIMITED),
        (ccxt_errors.ExchangeError("?"), None, ErrorKind.EXCHANGE),
        (ValueError("odd"), None, ErrorKind.UNKNOWN),
    ],
)
def test_classify_follows_ccxts_hierarchy(exc: BaseException, status: int | None, kind: ErrorKind) -> None:
    assert classify(exc, status) is kind


def test_scrub_removes_signatures_and_secrets() -> None:
    text = scrub("GET https://x/api?timestamp=1&signature=abcd failed for key-SECRET-1", ["key-SECRET-1"])
    assert "signature" not in text and "key-SECRET-1" not in text and "***" in text
    assert "present=['api_key']" in repr(Credentials(api_key="k-123456"))
    assert "k-123456" not in repr(Credentials(api_key="k-123456"))


def test_rewrite_urls_keeps_host_and_path() -> None:
    urls = {"rest": "https://{hostname}", "public": {"spot": "https://api.gateio.ws/api/v4"}, "doc": 3}
    out = rewrite_urls(urls, "http://127.0.0.1:9/", "www.okx.com")
    assert out == {
        "rest": "http://127.0.0.1:9/www.okx.com",
        "public": {"spot": "http://127.0.0.1:9/api.gateio.ws/api/v4"},
        "doc": 3,
    }


def stamps(times_ms: list[float], cost: float = 1.0) -> list[RequestStamp]:
    return [RequestStamp(t / 1000, cost, "GET", "/x") for t in times_ms]


def test_rate_limit_conformance() -> None:
    assert rate_limit_compliance(stamps([0, 100, 200, 300]), 100).ok
    assert rate_limit_compliance(stamps([0, 1, 100, 200]), 100).ok  # ccxt's burst of two after idle
    burst = rate_limit_compliance(stamps([0, 1, 2, 3, 4]), 100)
    assert not burst.ok and burst.worst_excess > 0
    assert not rate_limit_compliance(stamps([0, 100, 200], cost=5), 100).ok  # costly calls need more room
    assert rate_limit_compliance([], 100).ok


def healthy(name: str = "binance", **changes: object) -> ExchangeFacts:
    facts = ExchangeFacts(name, name, True, True, ["BTC-USDT"])
    facts.sandbox_available = facts.sandbox_used = True
    facts.server_skew_ms = 12.0
    facts.markets = 3
    facts.rate_limit_ms = 50
    facts.permissions = Permissions(True, False, False, "endpoint")
    facts.requests = stamps([0, 60, 120])
    for call in ("time", "markets", "ticker", "balance", "permissions", "status"):
        facts.calls[call] = CallOutcome(call, True, 5.0)
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def test_a_healthy_exchange_is_validated() -> None:
    judged = judge_exchange(healthy(), 2, 5000)
    assert judged.status == VALIDATED and not judged.problems and not judged.warning
    assert "sandbox" in judged.detail() and "key permissions: read" in judged.detail()


def test_exchange_failures_name_the_fix() -> None:
    skewed = judge_exchange(healthy(server_skew_ms=9000.0), 2, 5000)
    assert skewed.status == FAILED and "sync NTP" in skewed.detail()
    missing = judge_exchange(healthy(missing_pairs=["BTC-USDT"]), 2, 5000)
    assert "fix exchanges.binance.pairs" in missing.detail()
    creds = judge_exchange(healthy("okx", missing_credentials=["passphrase"]), 2, 5000)
    assert "lyra-governor vault set exchange/okx/passphrase" in creds.detail()
    facts = healthy()
    facts.calls["balance"] = CallOutcome("balance", False, 3.0, ErrorKind.CREDENTIALS, "AuthenticationError: x")
    assert "fix the API key" in judge_exchange(facts, 2, 5000).detail()
    maintenance = judge_exchange(healthy(status="maintenance"), 2, 5000)
    assert maintenance.status == FAILED
    hammered = judge_exchange(healthy(requests=stamps([0, 1, 2, 3, 4, 5])), 2, 5000)
    assert hammered.status == FAILED and "rate limit" in hammered.detail()


def test_permissions_rules() -> None:
    withdraw = judge_exchange(healthy(permissions=Permissions(True, False, True, "x")), 2, 5000)
    assert withdraw.critical and withdraw.status == FAILED
    trade = healthy(permissions=Permissions(True, True, False, "x"))
    assert judge_exchange(trade, 2, 5000).status == FAILED
    assert judge_exchange(trade, 4, 5000).status == VALIDATED
    assert judge_exchange(healthy(), 5, 5000).status == FAILED  # read-only key, live phase
    unverified = judge_exchange(healthy("kraken", permissions=Permissions()), 2, 5000)
    assert unverified.status == VALIDATED and unverified.warning and "unverified" in unverified.detail()


def test_unsupported_exchanges_are_never_a_pass() -> None:
    surge = ExchangeFacts("digital_surge", None, False, False, ["BTC-AUD"])
    judged = judge_exchange(surge, 2, 5000)
    assert judged.status == UNSUPPORTED and "BTC Markets" in judged.detail()
    white = healthy("whitebit", hummingbot=False, permissions=Permissions())
    judged = judge_exchange(white, 2, 5000)
    assert judged.status == UNSUPPORTED and "removed its WhiteBIT connector" in judged.detail()


def council(verdict: Verdict) -> ConsensusResult:
    return ConsensusResult(
        phase=2, verdict=verdict, agreement=1.0, threshold=0.75, response_rate=1.0, mean_confidence=0.9
    )


def test_verdict_is_the_most_restrictive_of_checks_and_council() -> None:
    ok = [Check("a", True, "")]
    assert final_verdict(ok, council(Verdict.PROCEED)) is Verdict.PROCEED
    assert final_verdict(ok, council(Verdict.HOLD_OR_INVESTIGATE)) is Verdict.HOLD_OR_INVESTIGATE
    assert final_verdict(ok, None) is Verdict.HOLD_OR_INVESTIGATE  # no council answer: fail closed
    failed = [*ok, Check("b", False, "")]
    assert final_verdict(failed, council(Verdict.PROCEED)) is Verdict.HOLD_OR_INVESTIGATE
    info = [*ok, Check("c", False, "", gating=False)]
    assert checks_verdict(info) is Verdict.PROCEED_WITH_CAUTION
    warn = [Check("d", True, "", warning=True)]
    assert checks_verdict(warn) is Verdict.PROCEED_WITH_CAUTION
    critical = [Check("e", False, "", critical=True, gating=False)]
    assert final_verdict(critical, council(Verdict.PROCEED)) is Verdict.ABORT


def test_phase1_checks(settings: Settings) -> None:
    good = Phase1Facts(
        council_response_rate=1.0,
        rotation_ok=True,
        rotation_detail="rotated",
        vault_present=True,
        vault_ok=True,
        vault_detail="3 secrets",
        file_modes=[FileMode("v", 0o600, 0o600), FileMode("d", 0o700, 0o700)],
        monitoring_url="http://127.0.0.1:8091/healthz",
        monitoring_ok=True,
        load_per_cpu=0.2,
        free_memory_pct=50,
        free_disk_gb=20,
    )
    assert all(c.passed for c in phase1_checks(good, settings))
    bad = Phase1Facts(
        council_response_rate=0.5,
        council_models_gone=["role risk_assessor: a/b all gone from OpenRouter's catalogue"],
        rotation_ok=False,
        rotation_detail="after rotation the OLD password still opens the vault",
        vault_present=False,
        file_modes=[FileMode("v", 0o644, 0o600)],
        monitoring_url="http://127.0.0.1:8091/healthz",
        monitoring_ok=False,
        monitoring_detail="ConnectError",
        load_per_cpu=3.0,
        free_memory_pct=2,
        free_disk_gb=0.1,
    )
    checks = {c.name: c for c in phase1_checks(bad, settings)}
    assert not any(c.passed for c in checks.values())
    assert "lyra-governor serve" in checks["monitoring server"].detail
    assert "lyra-governor vault init" in checks["vault integrity"].detail
    assert "0o644" in checks["file modes"].detail
    assert "50%" in checks["council responsiveness"].detail
    assert "role risk_assessor" in checks["council models"].detail


def test_gate_checks_for_paper_and_live(settings: Settings) -> None:
    paper = {"success_rate": 0.97, "limits_respected": True, "arbitrage_seen": 2, "orders_proposed": 50,
             "strategies": {"grid": {"proposed": 2, "approved": 1, "fills": 1}}, "strategies_untested": []}
    facts = GateFacts(3, False, PromotionFacts(phase=3, halted=False), [], paper)
    assert all(c.passed for c in gate_checks(3, facts, settings))
    early = GateFacts(2, False, PromotionFacts(phase=4, halted=False), [])
    checks = {c.name: c for c in gate_checks(4, early, settings)}
    assert not checks["ladder at phase 4"].passed and "promote" in checks["ladder at phase 4"].detail
    assert not checks["emergency-stop drill"].passed
    broken = GateFacts(5, False, PromotionFacts(phase=5, halted=False), [], audit_ok=False, audit_detail="x")
    assert checks_verdict(gate_checks(5, broken, settings)) is Verdict.ABORT
