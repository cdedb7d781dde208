"""The emergency stop over Hummingbot's own MQTT remote interface (paho-mqtt 2.x).

Why it is built this way:
- The store is the authority: `lyra-governor halt` writes the halt first, so every governed
  bot denies new exposure within one tick even when the broker is down. MQTT only makes the
  stop *faster and wider*: bots cancel their open orders at once.
- Hummingbot's bridge (hummingbot/remote_iface/mqtt.py) listens for RPC requests on exact
  topics ``<namespace>/<instance_id>/stop`` with the commlib envelope
  ``{"header": {"reply_to": ...}, "data": {"skip_order_cancellation": false, ...}}`` and runs
  its `stop` command (strategy stopped, outstanding orders cancelled). There are no wildcard
  command topics, so the instance ids must be known: configured (`mqtt.instance_ids`),
  announced by Lyra's listener as a retained presence message, or seen heartbeating on
  ``<namespace>/<instance_id>/hb`` during a short discovery window.
- Lyra's own retained message on ``<namespace>/lyra-governor/halt`` reaches governed strategies
  through `HaltListener`, including bots that connect after the halt was sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from lyra_governor.config import Settings

log = logging.getLogger(__name__)

LYRA_SEGMENT = "lyra-governor"
QOS_COMMAND = 1  # Hummingbot's bridge uses QoS 1 for commands


def halt_topic(namespace: str) -> str:
    """Lyra's retained halt/resume state, read by `HaltListener`."""
    return f"{namespace}/{LYRA_SEGMENT}/halt"


def presence_topic(namespace: str, instance_id: str = "+") -> str:
    """Retained presence of a governed Hummingbot instance (cleared by its last will)."""
    return f"{namespace}/{LYRA_SEGMENT}/instances/{instance_id}"


def command_topic(namespace: str, instance_id: str, command: str = "stop") -> str:
    """Hummingbot's RPC topic, e.g. ``hbot/<instance_id>/stop`` (TopicSpecs in remote_iface)."""
    return f"{namespace}/{instance_id}/{command}"


def heartbeat_topic(namespace: str, instance_id: str = "+") -> str:
    return f"{namespace}/{instance_id}/hb"


def stop_request(reply_to: str = "", skip_order_cancellation: bool = False) -> dict[str, Any]:
    """The commlib RPC envelope Hummingbot's `StopCommandMessage.Request` is parsed from."""
    return {
        "header": {
            "reply_to": reply_to,
            "timestamp": int(time.time() * 1000),
            "content_type": "json",
            "encoding": "utf8",
            "agent": "lyra-governor",
        },
        "data": {"skip_order_cancellation": skip_order_cancellation, "async_backend": True},
    }


def halt_message(halted: bool, reason: str, actor: str, ts: float | None = None) -> dict[str, Any]:
    return {"halted": halted, "reason": reason, "actor": actor, "ts": time.time() if ts is None else ts}


@dataclass
class BroadcastResult:
    """What a broadcast reached. `ok` means the broker took every message (QoS 1 acknowledged)."""

    ok: bool
    broker: str
    halt_topic: str
    instance_ids: list[str] = field(default_factory=list)
    stop_topics: list[str] = field(default_factory=list)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "broker": self.broker,
            "halt_topic": self.halt_topic,
            "instance_ids": self.instance_ids,
            "stop_topics": self.stop_topics,
            "replies": self.replies,
            "error": self.error,
        }


def _new_client(prefix: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{uuid.uuid4().hex[:10]}")
    client.connect_timeout = 5.0
    return client


def _parse(payload: bytes | bytearray) -> Any:
    try:
        return json.loads(payload.decode("utf-8")) if payload else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


class _Session:
    """One short-lived connection: connect, listen, publish with acknowledgement, disconnect."""

    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.settings = settings
        self.ns = settings.mqtt.namespace.rstrip("/.")
        self.timeout_s = timeout_s
        self.broker = f"{settings.mqtt.host}:{settings.mqtt.port}"
        self.client = _new_client("lyra-governor")
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.replies: dict[str, dict[str, Any]] = {}
        self.reply_topic = f"{self.ns}/{LYRA_SEGMENT}/replies/{uuid.uuid4().hex[:12]}"
        self._reply_for: dict[str, str] = {}
        self.client.on_message = self._on_message

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        parts = message.topic.split("/")
        with self.lock:
            if message.topic.startswith(self.reply_topic + "/"):
                instance = message.topic[len(self.reply_topic) + 1 :]
                body = _parse(message.payload)
                data = body.get("data") if isinstance(body, dict) else None
                self.replies[instance] = data if isinstance(data, dict) else {"raw": str(body)[:200]}
            elif len(parts) == 3 and parts[2] == "hb" and parts[1] != LYRA_SEGMENT:
                self.seen.add(parts[1])
            elif message.topic.startswith(f"{self.ns}/{LYRA_SEGMENT}/instances/") and message.payload:
                self.seen.add(parts[-1])

    def __enter__(self) -> _Session:
        self.client.connect(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=30)
        self.client.loop_start()
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def subscribe(self, topics: Iterable[str]) -> None:
        for topic in topics:
            result, _mid = self.client.subscribe(topic, qos=1)
            if result != paho.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"subscribe to {topic} failed ({paho.error_string(result)})")

    def publish(self, topic: str, payload: dict[str, Any] | None, retain: bool = False) -> None:
        body = b"" if payload is None else json.dumps(payload, default=str).encode()
        info = self.client.publish(topic, body, qos=QOS_COMMAND, retain=retain)
        info.wait_for_publish(timeout=self.timeout_s)
        if not info.is_published():
            raise TimeoutError(f"the broker did not acknowledge {topic} within {self.timeout_s:g} s")


def discover_instances(settings: Settings, wait_s: float | None = None, timeout_s: float = 5.0) -> list[str]:
    """Hummingbot instance ids heard on the broker: retained Lyra presence (at once) and
    bridge heartbeats (every 10 s, so a short window catches only some)."""
    wait = settings.mqtt.discover_s if wait_s is None else wait_s
    with _Session(settings, timeout_s) as session:
        session.subscribe([heartbeat_topic(session.ns), presence_topic(session.ns)])
        time.sleep(wait)
        with session.lock:
            return sorted(session.seen)


def _broadcast(
    settings: Settings,
    message: dict[str, Any],
    send_stop: bool,
    instance_ids: Iterable[str],
    discover_s: float | None,
    reply_wait_s: float,
    skip_order_cancellation: bool,
    timeout_s: float,
) -> BroadcastResult:
    ns = settings.mqtt.namespace.rstrip("/.")
    result = BroadcastResult(False, f"{settings.mqtt.host}:{settings.mqtt.port}", halt_topic(ns))
    targets = set(settings.mqtt.instance_ids) | set(instance_ids)
    try:
        with _Session(settings, timeout_s) as session:
            # Lyra's own retained state first, before listening for instances: governed bots act
            # on it even without the bridge, and cancel their orders without waiting out
            # `discover_s` (issue 19 point 5: the halt's time to the last cancel).
            session.publish(halt_topic(ns), message, retain=True)
            if send_stop:
                session.subscribe([heartbeat_topic(ns), presence_topic(ns), session.reply_topic + "/+"])
                wait = settings.mqtt.discover_s if discover_s is None else discover_s
                time.sleep(wait)
                with session.lock:
                    targets |= session.seen
                for instance in sorted(targets):
                    topic = command_topic(ns, instance, "stop")
                    session.publish(topic, stop_request(f"{session.reply_topic}/{instance}", skip_order_cancellation))
                    result.stop_topics.append(topic)
                deadline = time.monotonic() + reply_wait_s
                while time.monotonic() < deadline:
                    with session.lock:
                        if set(session.replies) >= targets:
                            break
                    time.sleep(0.05)
                with session.lock:
                    result.replies = dict(session.replies)
            result.instance_ids = sorted(targets)
            result.ok = True
    except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
        result.error = (
            f"MQTT broker {result.broker} unreachable or refused ({type(exc).__name__}: {exc}); the halt is in the "
            "store, so governed bots still deny new exposure; check mqtt.host/mqtt.port and that Mosquitto runs"
        )
        # the caller reports result.error (the CLI prints it once and audits it): not twice
        log.debug("%s", result.error)
    return result


def broadcast_stop(
    settings: Settings,
    reason: str,
    actor: str,
    *,
    instance_ids: Iterable[str] = (),
    discover_s: float | None = None,
    reply_wait_s: float = 2.0,
    skip_order_cancellation: bool = False,
    timeout_s: float = 5.0,
) -> BroadcastResult:
    """Publish the retained Lyra halt and Hummingbot's `stop` command to every known instance.

    Never raises for a broker problem: the result says what happened (`ok`, `error`).
    """
    return _broadcast(
        settings,
        halt_message(True, reason, actor),
        True,
        instance_ids,
        discover_s,
        reply_wait_s,
        skip_order_cancellation,
        timeout_s,
    )


def broadcast_resume(settings: Settings, reason: str, actor: str, *, timeout_s: float = 5.0) -> BroadcastResult:
    """Replace the retained halt with a resume. Stopped Hummingbot bots are restarted by their
    operator (`start`): a resume must never start trading on its own."""
    return _broadcast(settings, halt_message(False, reason, actor), False, (), 0.0, 0.0, False, timeout_s)


HaltCallback = Callable[[dict[str, Any]], None]


class HaltListener:
    """For governed strategies: call `on_halt` when the operator halts, `on_resume` on resume.

    Runs paho's network thread; callbacks run on it, so they must be quick and thread-safe
    (e.g. set a flag the strategy's tick reads, or `loop.call_soon_threadsafe`). With an
    `instance_id` it announces the bot (retained, cleared by its last will) so `halt` can send
    Hummingbot's stop command to it without waiting for a heartbeat.
    """

    def __init__(
        self,
        settings: Settings,
        on_halt: HaltCallback,
        on_resume: HaltCallback | None = None,
        instance_id: str | None = None,
        bot_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.ns = settings.mqtt.namespace.rstrip("/.")
        self.on_halt = on_halt
        self.on_resume = on_resume
        self.instance_id = instance_id
        self.bot_id = bot_id
        self.halted: bool | None = None
        self.last_message: dict[str, Any] | None = None
        self.connected = threading.Event()
        self.client = _new_client("lyra-listener")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        if instance_id:
            self.client.will_set(presence_topic(self.ns, instance_id), b"", qos=1, retain=True)

    def start(self, wait_s: float = 5.0) -> HaltListener:
        """Connect in the background (paho reconnects on its own). Raises OSError if the broker
        cannot be reached now; the store still carries the halt, so callers may log and go on."""
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.connect(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=30)
        self.client.loop_start()
        self.connected.wait(wait_s)
        return self

    def stop(self) -> None:
        if self.instance_id and self.connected.is_set():
            info = self.client.publish(presence_topic(self.ns, self.instance_id), b"", qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT listener refused by %s:%s: %s", self.settings.mqtt.host, self.settings.mqtt.port, reason)
            return
        client.subscribe(halt_topic(self.ns), qos=1)
        if self.instance_id:
            presence = {"instance_id": self.instance_id, "bot_id": self.bot_id, "since": time.time()}
            client.publish(presence_topic(self.ns, self.instance_id), json.dumps(presence), qos=1, retain=True)
        self.connected.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        body = _parse(message.payload)
        if not isinstance(body, dict) or not isinstance(body.get("halted"), bool):
            return  # not ours or malformed: ignore (the store stays the authority)
        self.last_message = body
        self.halted = body["halted"]
        callback = self.on_halt if body["halted"] else self.on_resume
        if callback is None:
            return
        try:
            callback(body)
        except Exception:
            log.exception("halt listener callback failed")
