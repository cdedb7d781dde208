"""A governed bot in its own process, for the kill -9 test: Hummingbot's real Binance (or OKX)
connector pointed at a running simulator, a governed probe strategy, the store from LYRA_DB_URL.

    python -m tests.live_sim.bot_process --venue binance --url http://127.0.0.1:PORT --key K \\
        --secret S [--passphrase P] --bot-id ID --order BUY:0.0003:59000 --order SELL:0.0003:61000

It places the orders through the governor, prints one line ``READY {"orders": [...]}`` once
the exchange holds them all, then runs until it is killed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from types import SimpleNamespace

from lyra_governor.config import load_settings
from lyra_governor.models import Side
from tests.live_sim.governed_rig import governed_order, phase4_governor, probe_strategy, ready_to_trade
from tests.live_sim.harness import Rig, pointed_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venue", choices=("binance", "okx"), default="binance")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--passphrase", default="")
    parser.add_argument("--bot-id", required=True)
    parser.add_argument("--order", action="append", default=[], help="SIDE:AMOUNT:PRICE")
    args = parser.parse_args()
    sim = SimpleNamespace(name=args.venue, url=args.url, ws_url=args.url.replace("http://", "ws://"),
                          api_key=args.key, api_secret=args.secret, passphrase=args.passphrase)  # fmt: skip
    with pointed_at(sim):
        rig = Rig(sim)
        from lyra_strategies.paper.replay import start_markets_recorder

        async def recorder() -> object:
            return start_markets_recorder([rig.connector], __import__("pathlib").Path("hb.sqlite"))

        rig.run(recorder())
        gov = phase4_governor(load_settings(None), bot_id=args.bot_id)
        strategy = probe_strategy(rig, gov)
        rig.start(strategy)
        ready_to_trade(rig, strategy)
        ids = []
        for spec in args.order:
            side, amount, price = spec.split(":")
            ids.append(governed_order(rig, strategy, Side(side), amount, price, exchange=args.venue))
        from hummingbot.core.data_type.in_flight_order import OrderState

        rig.wait(lambda: all(rig.connector.in_flight_orders[i].current_state is OrderState.OPEN for i in ids), 20,
                 "the orders acknowledged")  # fmt: skip
        print("READY " + json.dumps({"orders": ids}), flush=True)
        rig.run(asyncio.sleep(3600))
    sys.exit(0)


if __name__ == "__main__":
    main()
