"""Hummingbot's real terminal client with a Lyra script, driven through tmux as a user types.

`lyra-governor hummingbot` starts Hummingbot 20260922's own quickstart (UI mode) on a fresh root;
the test types `start --v2 conf_lyra_market_making.yml` (a `binance_paper_trade` connector: no
network is needed for the strategy and the governor to start; the paper connector's order
books just stay empty offline), waits for the governor's start line in Hummingbot's log, types
`status` and reads the governor's block off the screen, runs `lyra-governor halt` over the
machine's Mosquitto and sees Hummingbot stop the strategy (its MQTT bridge answers the stop
command with status 200), then types `exit`: exit code 0 and no traceback through Lyra's code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

BROKER = ("127.0.0.1", 1883)
CONF = "conf_lyra_market_making.yml"
LYRA = str(Path(sys.executable).with_name("lyra-governor"))


def wait_for(what: str, probe: Callable[[], bool], timeout_s: float, detail: Callable[[], str]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if probe():
            return time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n--- last output ---\n{detail()[-4000:]}")


@pytest.fixture
def namespace() -> Iterator[str]:
    """An MQTT namespace of this test's own on the machine's Mosquitto; Lyra's retained halt
    message is cleared afterwards."""
    name = f"lyra-e2e-{uuid.uuid4().hex[:8]}"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-cleanup")
    try:
        client.connect(*BROKER, keepalive=30)
    except OSError as exc:
        pytest.fail(f"Mosquitto is not running on {BROKER[0]}:{BROKER[1]} ({exc}); start it (see tests/services)")
    client.loop_start()
    yield name
    client.publish(f"{name}/lyra-governor/halt", b"", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


class Terminal:
    """One tmux server of our own (its own socket), one pane with Hummingbot in it."""

    def __init__(self, home: Path) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is not installed: `make test` installs it as root (apt-get install tmux)")
        self.tmux = tmux
        self.socket = f"lyra-e2e-{uuid.uuid4().hex[:8]}"
        self.home = home

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-L", self.socket, *args], capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        subprocess.run(
            [self.tmux, "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "hb",
             "-x", "300", "-y", "70", command],
            env=env, cwd=self.home, check=True, timeout=10,
        )  # fmt: skip

    def type(self, line: str) -> None:
        """Type a command and Enter, then one space: Hummingbot's completion menu pops up on the
        empty prompt over the last lines printed; a space closes it (and the next `type` first
        deletes it)."""
        self.run("send-keys", "-t", "hb", "BSpace")
        self.run("send-keys", "-t", "hb", "-l", line)
        self.run("send-keys", "-t", "hb", "Enter")
        time.sleep(0.5)
        self.run("send-keys", "-t", "hb", "-l", " ")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "hb", "-S", "-200")

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True, timeout=10, check=False)
        folder = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"  # where tmux puts it
        (folder / self.socket).unlink(missing_ok=True)  # our server's socket file, nobody else's


@pytest.mark.timeout(150)
def test_hummingbot_terminal_runs_a_governed_script(tmp_path: Path, namespace: str) -> None:
    root = tmp_path / "hbot"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "CONFIG_", "SCRIPT_", "HEADLESS"))}
    env.update(
        HOME=str(tmp_path),
        TERM="xterm-256color",
        CONFIG_PASSWORD="e2e-only-password",
        LYRA_DB_URL=f"sqlite:///{tmp_path / 'lyra.db'}",
        LYRA_DATA_DIR=str(tmp_path / "data"),
        LYRA_MQTT__ENABLED="true",
        LYRA_MQTT__HOST=BROKER[0],
        LYRA_MQTT__PORT=str(BROKER[1]),
        LYRA_MQTT__NAMESPACE=namespace,
    )
    seed_phase_3(env)
    exit_file = tmp_path / "exit_code"
    term = Terminal(tmp_path)
    began = time.monotonic()
    term.start(f"{LYRA} hummingbot --root {root} 2>{tmp_path / 'launcher.err'}; echo $? > {exit_file}; sleep 60", env)
    try:
        log = root / "logs" / f"logs_{CONF.removesuffix('.yml')}.log"

        def log_text() -> str:
            return log.read_text(errors="replace") if log.exists() else ""

        ui_s = wait_for("Hummingbot's prompt", lambda: ">>>" in term.screen(), 90, term.screen)
        term.type(f"start --v2 {CONF}")
        wait_for("the governor's start line", lambda: "Lyra governor started" in log_text(), 30, log_text)
        started = re.search(r"Lyra governor started: .*", log_text())
        assert started is not None and "phase 3 (paper trading)" in started.group(0), log_text()[-2000:]
        assert "trading ACTIVE" in started.group(0) and "council local" in started.group(0)
        assert f"MQTT halt 127.0.0.1:1883 ({namespace})" in started.group(0)

        term.type("status")
        wait_for("the governor's lines in `status`", lambda: "Breakers" in term.screen(), 20, term.screen)
        status = term.screen()
        assert "Lyra governor  bot lyra-market-making" in status, status
        for line in ("Phase 3 (paper trading)", "Trading: ACTIVE", "Caps (paper book)", "binance ", "all exchanges",
                     "Open mandates:", "Denials", "Breakers"):  # fmt: skip
            assert line in status, (line, status)
        assert "Paper Trading Active" in status  # Hummingbot's own status follows the governor's block

        instance = yaml_instance_id(root / "conf" / "conf_client.yml")
        halted = subprocess.run(
            [LYRA, "halt", "--reason", "e2e: halt from the operator", "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
        assert halted.returncode == 0, halted.stderr
        result = json.loads(halted.stdout.strip().splitlines()[-1])
        assert result["halted"] is True and result["mqtt"]["ok"] is True, result
        assert instance in result["mqtt"]["instance_ids"], (instance, result)
        wait_for("Hummingbot stopping the strategy", lambda: "stopped successfully" in log_text().lower(), 30, log_text)
        assert result["mqtt"]["replies"].get(instance, {}).get("status") == 200, result["mqtt"]
        wait_for("the governor's state-change line", lambda: "Lyra trading ACTIVE -> HALTED" in log_text(), 10,
                 log_text)  # fmt: skip

        term.type("exit")
        wait_for("Hummingbot to exit", exit_file.exists, 30, term.screen)
        elapsed = time.monotonic() - began
        assert exit_file.read_text().strip() == "0", (tmp_path / "launcher.err").read_text()
        print(f"real client: UI up in {ui_s:.1f} s, whole session {elapsed:.1f} s")
        (tmp_path / "screen.txt").write_text(term.screen())  # what the terminal showed after `exit`
        for path in [*root.glob("logs/*.log"), tmp_path / "launcher.err", tmp_path / "screen.txt"]:
            for block in path.read_text(errors="replace").split("Traceback (most recent call last):")[1:]:
                frames = re.findall(r'File "([^"]+)"', block.split("\n\n")[0])
                assert not any("lyra_" in f for f in frames), f"traceback through Lyra in {path.name}:\n{block[:3000]}"
    finally:
        term.close()


def seed_phase_3(env: dict[str, str]) -> None:
    """The paper phase, as after commissioning phases 1 and 2 (the store the bot and halt share)."""
    from lyra_governor.config import load_settings
    from lyra_governor.ledger import Ledger

    settings = load_settings(None, use_env=False, db_url=env["LYRA_DB_URL"], data_dir=env["LYRA_DATA_DIR"])
    ledger = Ledger.open(settings)
    try:
        ledger.set_phase(3, "e2e: phases 1 and 2 passed", "test")
    finally:
        ledger.close()


def yaml_instance_id(path: Path) -> str:
    import yaml

    return str(yaml.safe_load(path.read_text())["instance_id"])
