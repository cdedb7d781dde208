"""The bots table shows where each bot runs now: a restart updates host and pid."""

from __future__ import annotations

import os
import socket

from lyra_governor.config import Settings
from lyra_governor.governor import Governor


def test_a_restart_updates_host_and_pid(settings: Settings) -> None:
    gov = Governor.from_settings(settings, "bot-r")
    try:
        gov.store.heartbeat("bot-r", 1.0, "old-host", 1)  # the bot's previous life
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [("old-host", 1)]
        gov.store.heartbeat("bot-r", 2.0, "new-host", 4242)  # restarted elsewhere (the governor's hot path)
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [("new-host", 4242)]
        gov.heartbeats.last = float("-inf")
        gov.heartbeat()  # the governor's own heartbeat: this process
        assert [(b.host, b.pid) for b in gov.ledger.bots()] == [(socket.gethostname(), os.getpid())]
    finally:
        gov.close()
