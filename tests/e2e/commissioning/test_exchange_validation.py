"""Phase-2 validation through real ccxt against the fake exchange on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from lyra_governor.commissioning.phase2 import FAILED, UNSUPPORTED, VALIDATED, phase2_checks, rate_limit_compliance
from lyra_governor.config import Settings, load_settings
from lyra_governor.exchanges import Credentials, ErrorKind, RequestStamp, ValidationFacts, validate_exchanges
from tests.e2e.commissioning.conftest import FAST, make_credentials
from tests.e2e.commissioning.fake_exchange import FakeExchange


def run(
    settings: Settings, creds: dict[str, Credentials], names: list[str] | None = None, phase: int = 2
) -> ValidationFacts:
    return asyncio.run(validate_exchanges(settings, creds, names, phase=phase))


@pytest.mark.timeout(60)
def test_all_seven_exchanges_judged_five_validated(
    fake_settings: Settings, credentials: dict[str, Credentials], fake_exchange: FakeExchange
) -> None:
    facts = run(fake_settings, credentials)
    checks, judgements = phase2_checks(facts, fake_settings)
    status = {j.name: j.status for j in judgements}
    assert status == {
        "binance": VALIDATED,
        "okx": VALIDATED,
        "kraken": VALIDATED,
        "gate_io": VALIDATED,
        "btc_markets": VALIDATED,
        "whitebit": UNSUPPORTED,  # ccxt works, Hummingbot has no connector: never a pass
        "digital_surge": UNSUPPORTED,  # no ccxt class at all
    }
    by_name = {c.name: c for c in checks}
    assert by_name["exchanges validated"].passed
    assert not by_name["exchange digital_surge"].passed
    assert "remove it from `exchanges`" in by_name["exchange digital_surge"].detail
    assert not by_name["exchange whitebit"].passed and "market-data source only" in by_name["exchange whitebit"].detail
    assert by_name["market-data failover"].passed and "served by" in by_name["market-data failover"].detail
    # permissions: OKX's endpoint was read; Kraken's cannot be, so it passes with a warning only
    assert "key permissions: read" in by_name["exchange okx"].detail
    assert by_name["exchange kraken"].warning and "unverified" in by_name["exchange kraken"].detail

    # sandbox first: Binance's testnet host and OKX's demo-trading header; Kraken has none
    hosts = {r.host for r in fake_exchange.calls("binance")}
    assert hosts == {"testnet.binance.vision"}
    assert {r.host for r in fake_exchange.calls("gate")} == {"api-testnet.gateapi.io"}
    assert all(r.headers.get("x-simulated-trading") == "1" for r in fake_exchange.calls("okx"))
    assert {r.host for r in fake_exchange.calls("kraken")} == {"api.kraken.com"}

    # rate-limit compliance measured independently from the fake's own request timestamps
    for ccxt_id, limit_ms in (("kraken", 1000), ("btcmarkets", 1000), ("okx", 110)):
        stamps = [RequestStamp(r.t, 1.0, r.method, r.path) for r in fake_exchange.calls(ccxt_id)]
        assert len(stamps) >= 4
        # arrival times, not send times: on a loaded machine one request can be held up in
        # transit and the next arrive on time, so allow half the spacing (an unthrottled client
        # sends these a few ms apart, far below it)
        assert rate_limit_compliance(stamps, limit_ms * 0.5).ok, (ccxt_id, [round(s.t, 3) for s in stamps])
    # no secret ever reaches the facts
    text = repr(facts)
    assert "key-binance-0123" not in text and "pass-okx" not in text


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("auth", ErrorKind.CREDENTIALS),
        ("rate_limit", ErrorKind.RATE_LIMITED),
        ("maintenance", ErrorKind.UNAVAILABLE),
        ("timeout", ErrorKind.TIMEOUT),
    ],
)
def test_error_scenarios_are_classified_and_fail(
    fake_settings: Settings,
    credentials: dict[str, Credentials],
    fake_exchange: FakeExchange,
    scenario: str,
    kind: ErrorKind,
) -> None:
    for ccxt_id in ("binance", "okx", "gate"):
        fake_exchange.play(ccxt_id, scenario)
    facts = run(fake_settings, credentials, list(FAST))
    _, judgements = phase2_checks(facts, fake_settings)
    for exchange, judgement in zip(facts.exchanges, judgements, strict=True):
        assert judgement.status == FAILED, (exchange.name, judgement.detail())
        failed = [c for c in exchange.calls.values() if not c.ok and c.kind is not ErrorKind.NOT_SUPPORTED]
        assert failed and failed[-1].kind is kind, (exchange.name, failed)
        assert "—" in judgement.detail()  # the action to take is named
    if scenario != "auth":
        # after a 429, outage or timeout the probe stops at once rather than hammering on
        assert all(len(e.calls) <= 2 for e in facts.exchanges)


@pytest.mark.timeout(60)
def test_withdrawal_permission_is_critical_and_trading_depends_on_phase(
    fake_settings: Settings, credentials: dict[str, Credentials], fake_exchange: FakeExchange
) -> None:
    fake_exchange.play("okx", "withdraw")
    checks, judgements = phase2_checks(run(fake_settings, credentials, ["okx"]), fake_settings)
    assert judgements[0].critical and "WITHDRAW" in judgements[0].detail()
    assert checks[0].critical and not checks[0].passed and checks[0].gating

    fake_exchange.play("okx", "trade")
    _, at_phase2 = phase2_checks(run(fake_settings, credentials, ["okx"], phase=2), fake_settings)
    assert at_phase2[0].status == FAILED and "read-only key" in at_phase2[0].detail()
    _, at_phase4 = phase2_checks(run(fake_settings, credentials, ["okx"], phase=4), fake_settings)
    assert at_phase4[0].status == VALIDATED

    fake_exchange.play("okx", "ok")  # read-only key in phase 4: cannot trade live
    _, read_only = phase2_checks(run(fake_settings, credentials, ["okx"], phase=4), fake_settings)
    assert read_only[0].status == FAILED and "cannot trade" in read_only[0].detail()


@pytest.mark.timeout(60)
def test_missing_okx_passphrase_is_named(fake_settings: Settings, fake_exchange: FakeExchange) -> None:
    creds = {"okx": Credentials("key-okx-0123", "secret-okx", None)}
    _, judgements = phase2_checks(run(fake_settings, creds, ["okx"]), fake_settings)
    assert judgements[0].status == FAILED
    assert "exchange/okx/passphrase" in judgements[0].detail()
    # without a complete key no private call is made at all
    assert not any(r.path.startswith("/api/v5/account") for r in fake_exchange.calls("okx"))


@pytest.mark.timeout(60)
def test_market_data_fails_over_when_an_exchange_times_out(
    fake_settings: Settings, credentials: dict[str, Credentials], fake_exchange: FakeExchange
) -> None:
    fake_exchange.play("binance", "timeout")
    facts = run(fake_settings, credentials, list(FAST))
    assert facts.failover is not None
    assert not facts.failover.drill
    assert facts.failover.primary == "binance" and facts.failover.primary_kind is ErrorKind.TIMEOUT
    assert facts.failover.served_by == "okx" and facts.failover.last == pytest.approx(65000.5)


@pytest.mark.timeout(60)
def test_btc_markets_bad_key_by_http_status_and_no_second_aud_source(
    fake_settings: Settings, credentials: dict[str, Credentials], fake_exchange: FakeExchange
) -> None:
    fake_exchange.play("btcmarkets", "auth")  # ccxt raises a bare ExchangeError here: the 401 classifies it
    facts = run(fake_settings, credentials, ["btc_markets"])  # the only AUD market
    assert facts.exchanges[0].calls["balance"].kind is ErrorKind.CREDENTIALS
    checks, _ = phase2_checks(facts, fake_settings)
    failover = checks[-1]
    assert failover.name == "market-data failover" and not failover.passed
    assert "second exchange" in failover.detail


@pytest.mark.timeout(60)
def test_live_endpoints_when_sandbox_is_off(fast_settings: Settings, fake_exchange: FakeExchange) -> None:
    data = fast_settings.model_dump(mode="json", exclude={"source"})
    data["commissioning"]["sandbox"] = False
    live = load_settings(None, use_env=False, **data)
    facts = run(live, make_credentials(list(FAST)), list(FAST))
    checks, judgements = phase2_checks(facts, live)
    assert [j.status for j in judgements] == [VALIDATED] * 3, [j.detail() for j in judgements]
    assert {r.host for r in fake_exchange.calls("binance")} == {"api.binance.com"}
    assert {r.host for r in fake_exchange.calls("gate")} == {"api.gateio.ws"}
    assert not any("x-simulated-trading" in r.headers for r in fake_exchange.calls("okx"))
    binance = next(c for c in checks if c.name == "exchange binance")
    # on the live API Binance's key restrictions are readable, so nothing is left unverified
    assert "key permissions: read" in binance.detail and not binance.warning
    assert any(r.path == "/sapi/v1/account/apiRestrictions" for r in fake_exchange.calls("binance"))
