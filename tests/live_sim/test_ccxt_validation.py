"""Point 6: one simulator serves both paths. Phase-2 validation (`validate_exchanges`, real
ccxt, signed read-only calls) and Hummingbot's live connector talk to the same BinanceSim."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lyra_governor.commissioning.phase2 import VALIDATED, phase2_checks
from lyra_governor.config import load_settings
from lyra_governor.exchanges import Credentials, validate_exchanges
from tests.live_sim.binance_sim import BinanceSim
from tests.live_sim.harness import Rig
from tests.live_sim.okx_sim import OkxSim


def test_phase2_validation_and_the_live_connector_share_the_simulator(sim: BinanceSim, lyra_home: Path) -> None:
    settings = load_settings(
        None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}", data_dir=str(lyra_home / "data"),
        commissioning={"exchange_api_url": sim.url, "timeout_s": 5.0},
        exchanges={"binance": {"ccxt_id": "binance", "hummingbot": True, "pairs": ["BTC-USDT"]}},
    )  # fmt: skip
    creds = {"binance": Credentials(sim.api_key, sim.api_secret, None)}
    facts = asyncio.run(validate_exchanges(settings, creds, ["binance"]))
    _checks, judgements = phase2_checks(facts, settings)
    (binance,) = [j for j in judgements if j.name == "binance"]
    assert binance.status == VALIDATED, binance
    signed = [p for _, _, p in sim.requests if p in ("/api/v3/account", "/sapi/v1/account/apiRestrictions")]
    assert signed and not any(status == 400 for _, _, status, _ in sim.errors)  # signatures checked and good
    # a wrong secret is refused by the same check
    bad = asyncio.run(validate_exchanges(settings, {"binance": Credentials(sim.api_key, "wrong", None)}, ["binance"]))
    assert phase2_checks(bad, settings)[1][0].status != VALIDATED
    assert any(code == -1022 for *_, code in sim.errors)
    # and Hummingbot's connector gets ready on the very same simulator
    rig = Rig(sim)
    try:
        rig.start()
        assert rig.connector.get_balance("USDT") > 0
    finally:
        rig.close()


def test_phase2_validation_of_okx_against_the_okx_simulator(okx_sim: OkxSim, lyra_home: Path) -> None:
    """The same for the second venue: ccxt's okx (key, secret and passphrase) validates against
    the OKX simulator that Hummingbot's okx connector trades on. Phase 2 wants a read-only key."""
    okx_sim.key_can_trade = False
    settings = load_settings(
        None, use_env=False, db_url=f"sqlite:///{lyra_home / 'lyra.db'}", data_dir=str(lyra_home / "data"),
        commissioning={"exchange_api_url": okx_sim.url, "timeout_s": 5.0},
        exchanges={"okx": {"ccxt_id": "okx", "hummingbot": True, "pairs": ["BTC-USDT"]}},
    )  # fmt: skip
    creds = {"okx": Credentials(okx_sim.api_key, okx_sim.api_secret, okx_sim.passphrase)}
    facts = asyncio.run(validate_exchanges(settings, creds, ["okx"]))
    (okx,) = [j for j in phase2_checks(facts, settings)[1] if j.name == "okx"]
    assert okx.status == VALIDATED, okx
    assert any(p == "/api/v5/account/balance" for _, _, p in okx_sim.requests) and not okx_sim.errors
    bad = asyncio.run(validate_exchanges(settings, {"okx": Credentials(okx_sim.api_key, "wrong", "x")}, ["okx"]))
    assert phase2_checks(bad, settings)[1][0].status != VALIDATED
    assert okx_sim.errors  # refused by the simulator's signature or passphrase check
