"""Hummingbot's real MQTT bridge (`MQTTGateway` + `MQTTCommands`) around a stand-in application.

`python hb_bridge.py <host> <port> <namespace> <instance_id>`. Only the application object is a
stand-in (no exchange, no strategy): the topics, envelopes, heartbeats and command dispatch are
Hummingbot's own code. When the bridge calls the application's `stop`, one JSON line is printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from hummingbot.client.config.client_config_map import ClientConfigMap
from hummingbot.remote_iface.mqtt import MQTTGateway


class StandInApp:
    def __init__(self, loop: asyncio.AbstractEventLoop, instance_id: str, host: str, port: int, ns: str) -> None:
        self.ev_loop = loop
        self.instance_id = instance_id
        self.client_config_map = ClientConfigMap()
        bridge = self.client_config_map.mqtt_bridge
        bridge.mqtt_host, bridge.mqtt_port, bridge.mqtt_namespace = host, port, ns
        bridge.mqtt_logger = False
        self.notifiers: list[Any] = []
        self.strategy = None
        self.strategy_name = None

    def logger(self) -> logging.Logger:
        return logging.getLogger("stand-in-app")

    def stop(self, skip_order_cancellation: bool = False) -> None:
        print(json.dumps({"stopped": True, "skip_order_cancellation": skip_order_cancellation}), flush=True)


async def main() -> None:
    host, port, ns, instance_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    app = StandInApp(asyncio.get_running_loop(), instance_id, host, port, ns)
    gateway = MQTTGateway(app)  # type: ignore[arg-type]
    gateway.start()
    for _ in range(200):
        if gateway.health:
            break
        await asyncio.sleep(0.05)
    print(json.dumps({"ready": gateway.health}), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
