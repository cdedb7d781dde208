"""The services tier talks to the machine's PostgreSQL and Mosquitto on 127.0.0.1.

An unreachable service is a failure naming the command that starts it, never a skip."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_URL = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MQTT_HOST, MQTT_PORT = "127.0.0.1", int(os.environ.get("LYRA_TEST_MQTT_PORT", "1883"))

START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Mosquitto": "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        pytest.fail(f"{name} is not reachable on {host}:{port}; start it with: {START[name]}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards, so tests never see each other."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    schema = f"lyra_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    require_service("Mosquitto", MQTT_HOST, MQTT_PORT)
    return MQTT_HOST, MQTT_PORT
