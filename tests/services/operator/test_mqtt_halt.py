"""The emergency stop over the machine's Mosquitto: store first, then Hummingbot's MQTT bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from lyra_governor.config import Settings, load_settings
from lyra_governor.ledger import Ledger
from lyra_governor.mqtt import HaltListener, broadcast_stop

EXE = str(Path(sys.executable).with_name("lyra-governor"))
BRIDGE = str(Path(__file__).with_name("hb_bridge.py"))


class Recorder:
    """A plain MQTT subscriber on the broker, as any monitoring tool would be."""

    def __init__(self, host: str, port: int, topics: list[str]) -> None:
        self.messages: list[tuple[str, Any, bool]] = []
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"rec-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, json.loads(m.payload) if m.payload else None, bool(m.retain))
        )
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.connect(host, port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self.ready.wait(5)

    def wait_for(self, topic: str, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, body, _ in self.messages:
                if t == topic:
                    return body
            time.sleep(0.02)
        raise AssertionError(f"nothing on {topic}; got {[m[0] for m in self.messages]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _env(home: Path, ns: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env |= {
        "LYRA_DB_URL": f"sqlite:///{home / 'lyra.db'}",
        "LYRA_DATA_DIR": str(home / "data"),
        "LYRA_MQTT__ENABLED": "true",
        "LYRA_MQTT__NAMESPACE": ns,
        "LYRA_MQTT__DISCOVER_S": "0.3",
        "COLUMNS": "160",
    }
    return env | extra


def _settings(home: Path, ns: str, port: int = 1883) -> Settings:
    return load_settings(
        None,
        use_env=False,
        db_url=f"sqlite:///{home / 'lyra.db'}",
        mqtt={"enabled": True, "namespace": ns, "port": port, "discover_s": 0.3},
    )


@pytest.mark.timeout(60)
def test_halt_writes_the_store_then_reaches_every_bot(lyra_home: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(host, port, [f"{ns}/+/stop", f"{ns}/lyra-governor/halt"])
    got: list[dict[str, Any]] = []
    listener = HaltListener(_settings(lyra_home, ns), got.append, got.append, instance_id="hb-listening").start()
    try:
        assert listener.connected.is_set()
        result = subprocess.run(
            [EXE, "halt", "--reason", "flash crash", "--actor", "ops", "--json"],
            check=False, capture_output=True, text=True, timeout=60, cwd=lyra_home,
            env=_env(lyra_home, ns, LYRA_MQTT__INSTANCE_IDS='["hb-configured"]'),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout.strip().splitlines()[-1])
        # the configured id and the one announced by the listener both get Hummingbot's stop
        assert out["halted"] is True and out["mqtt"]["ok"] is True
        assert out["mqtt"]["instance_ids"] == ["hb-configured", "hb-listening"]
        stop = recorder.wait_for(f"{ns}/hb-configured/stop")
        assert stop["data"] == {"skip_order_cancellation": False, "async_backend": True}
        assert stop["header"]["reply_to"].startswith(f"{ns}/lyra-governor/replies/")
        recorder.wait_for(f"{ns}/hb-listening/stop")
        assert recorder.wait_for(f"{ns}/lyra-governor/halt")["reason"] == "flash crash"
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got and got[0]["halted"] is True and got[0]["actor"] == "ops"

        ledger = Ledger.open(_settings(lyra_home, ns))
        try:
            assert ledger.state().halted and ledger.state().reason == "flash crash"
            from lyra_governor import audit

            events = [r.event for r in audit.tail(ledger.engine, 5)]
            assert events[-2:] == ["halt", "halt_broadcast"]  # the store first, then the broadcast
        finally:
            ledger.close()

        resumed = subprocess.run(
            [EXE, "resume", "--json"],
            check=False, capture_output=True, text=True, timeout=60, cwd=lyra_home,
            env=_env(lyra_home, ns),
        )  # fmt: skip
        assert resumed.returncode == 0 and json.loads(resumed.stdout)["mqtt"]["ok"] is True
        deadline = time.monotonic() + 5
        while listener.halted is not False and time.monotonic() < deadline:
            time.sleep(0.02)
        assert listener.halted is False and got[-1]["halted"] is False
    finally:
        listener.stop()
        recorder.close()


@pytest.mark.timeout(60)
def test_hummingbots_own_bridge_stops_and_cancels(lyra_home: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    bridge = subprocess.Popen(
        [sys.executable, BRIDGE, host, str(port), ns, "hb-real"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert bridge.stdout is not None
        assert json.loads(bridge.stdout.readline()) == {"ready": True}
        settings = _settings(lyra_home, ns).model_copy(
            update={"mqtt": _settings(lyra_home, ns).mqtt.model_copy(update={"instance_ids": ["hb-real"]})}
        )
        result = broadcast_stop(settings, "drill over MQTT", "test", discover_s=0.0, reply_wait_s=5.0)
        assert result.ok and result.stop_topics == [f"{ns}/hb-real/stop"]
        assert result.replies == {"hb-real": {"status": 200, "msg": ""}}  # Hummingbot's StopCommandMessage.Response
        assert json.loads(bridge.stdout.readline()) == {"stopped": True, "skip_order_cancellation": False}
    finally:
        bridge.kill()  # our own child, by its handle
        bridge.communicate(timeout=10)


@pytest.mark.timeout(60)
def test_broker_down_still_halts_through_the_store(lyra_home: Path, mqtt_broker: tuple[str, int]) -> None:
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [EXE, "halt", "--reason", "broker test"],
        check=False, capture_output=True, text=True, timeout=60, cwd=lyra_home,
        env=_env(lyra_home, ns, LYRA_MQTT__PORT="1"),
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "127.0.0.1:1 unreachable" in result.stderr and "governed bots still deny new exposure" in result.stderr
    ledger = Ledger.open(_settings(lyra_home, ns))
    try:
        assert ledger.state().halted
    finally:
        ledger.close()


@pytest.mark.timeout(60)
def test_store_down_still_broadcasts_the_stop(lyra_home: Path, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(host, port, [f"{ns}/+/stop"])
    try:
        result = subprocess.run(
            [EXE, "halt", "--reason", "database gone"],
            check=False, capture_output=True, text=True, timeout=60, cwd=lyra_home,
            env=_env(lyra_home, ns, LYRA_DB_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
                     LYRA_MQTT__INSTANCE_IDS='["hb-1"]'),
        )  # fmt: skip
        assert result.returncode == 3 and "Traceback" not in result.stderr
        assert "unavailable" in result.stderr and "broadcast over MQTT to 1 instance" in result.stderr
        assert recorder.wait_for(f"{ns}/hb-1/stop")["data"]["skip_order_cancellation"] is False
    finally:
        recorder.close()


@pytest.mark.timeout(60)
def test_governed_bots_hear_the_halt_before_the_instances_are_discovered(
    lyra_home: Path, mqtt_broker: tuple[str, int]
) -> None:
    """The retained halt goes out first; listening `discover_s` for Hummingbot instances (1 s by
    default) comes after, so a governed bot starts cancelling without waiting it out. Ordering,
    not timing: the halt is heard while `broadcast_stop` is still in its discovery wait."""
    ns = f"lyratest-{uuid.uuid4().hex[:8]}"
    heard = threading.Event()
    listener = HaltListener(_settings(lyra_home, ns), lambda _body: heard.set()).start()
    settings = _settings(lyra_home, ns)
    sent: list[Any] = []
    stopping = threading.Thread(
        target=lambda: sent.append(broadcast_stop(settings, "discovery order", "test", discover_s=8.0, reply_wait_s=0))
    )
    try:
        assert listener.connected.is_set()
        stopping.start()
        assert heard.wait(7.0), "no halt heard during the 8 s discovery wait"
        assert stopping.is_alive() and not sent  # still discovering: the halt did not wait for it
        stopping.join(30)
        assert sent and sent[0].ok
    finally:
        stopping.join(30)
        listener.stop()
