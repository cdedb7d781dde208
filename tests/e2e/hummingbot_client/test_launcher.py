"""`lyra-governor hummingbot`: the Hummingbot root, the password verification, headless first start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyra_governor.hbclient import SHIM_DIR

LYRA = str(Path(sys.executable).with_name("lyra-governor"))


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "CONFIG_", "SCRIPT_", "HEADLESS"))}
    env.update(HOME=str(tmp_path), LYRA_DB_URL=f"sqlite:///{tmp_path / 'lyra.db'}", LYRA_DATA_DIR=str(tmp_path))
    env.update(extra)
    return env


def lyra(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LYRA, "hummingbot", *args], capture_output=True, text=True, cwd=tmp_path,
        env=clean_env(tmp_path, **env), timeout=120, check=False,
    )  # fmt: skip


def hummingbot_accepts(root: Path, password: str) -> bool:
    """Hummingbot's own `validate_password`, in a process whose Hummingbot reads `root` (Lyra's
    path_util, as the quickstart imports it)."""
    code = (
        "import path_util\n"
        "from hummingbot.client.config.config_crypt import ETHKeyFileSecretManger, validate_password\n"
        "from hummingbot.client.settings import CONF_DIR_PATH\n"
        f"assert str(CONF_DIR_PATH) == {str(root / 'conf')!r}, CONF_DIR_PATH\n"
        f"print(validate_password(ETHKeyFileSecretManger({password!r})))\n"
    )
    path = os.pathsep.join([str(SHIM_DIR), *os.environ.get("PYTHONPATH", "").split(os.pathsep)])
    env = dict(os.environ, PYTHONPATH=path, LYRA_HUMMINGBOT_ROOT=str(root))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def test_prepare_creates_the_root_and_hummingbot_accepts_the_password(tmp_path: Path) -> None:
    done = lyra(tmp_path, "--prepare-only", CONFIG_PASSWORD="first-start")
    assert done.returncode == 0, done.stderr
    root = tmp_path / "hbot"
    for name in ("conf/scripts", "conf/connectors", "scripts", "logs", "data", "certs"):
        assert (root / name).is_dir(), name
    assert (root / "scripts" / "lyra_market_making.py").is_symlink()
    assert (root / "conf" / "scripts" / "conf_lyra_market_making.yml").is_file()
    assert (root / "hummingbot" / "templates").is_dir()  # Hummingbot reads its templates through the root
    assert "created conf/.password_verification from CONFIG_PASSWORD" in done.stderr
    assert "start --v2 conf_lyra_market_making.yml" in done.stderr
    assert hummingbot_accepts(root, "first-start") and not hummingbot_accepts(root, "another")
    # a second start keeps what is there, the user's config edits included
    conf = root / "conf" / "scripts" / "conf_lyra_market_making.yml"
    conf.write_text(conf.read_text() + "# mine\n")
    again = lyra(tmp_path, "--prepare-only", CONFIG_PASSWORD="first-start")
    assert again.returncode == 0 and "matches conf/.password_verification" in again.stderr
    assert conf.read_text().endswith("# mine\n") and "created" not in again.stderr


def test_user_mistakes_are_one_message(tmp_path: Path) -> None:
    assert lyra(tmp_path, "--prepare-only", CONFIG_PASSWORD="right").returncode == 0
    wrong = lyra(tmp_path, "--prepare-only", CONFIG_PASSWORD="wrong")
    assert wrong.returncode == 2 and "does not unlock" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "wrong" not in wrong.stderr.replace("wrong.", "")  # the password itself is never printed
    headless = lyra(tmp_path, "--headless", "--prepare-only")
    assert headless.returncode == 2 and "--headless needs CONFIG_PASSWORD" in headless.stderr
    missing = lyra(tmp_path, "--v2", "conf_nope.yml", "--prepare-only", CONFIG_PASSWORD="right")
    assert missing.returncode == 2 and "conf_lyra_arbitrage.yml" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.timeout(120)
def test_headless_first_start_from_the_environment_alone(tmp_path: Path) -> None:
    """What a compose bot does: no conf/.password_verification yet, CONFIG_PASSWORD and
    SCRIPT_CONFIG in the environment, `--headless`: Hummingbot starts the Lyra script."""
    env = clean_env(tmp_path, CONFIG_PASSWORD="from-env", SCRIPT_CONFIG="conf_lyra_rebalancer.yml")
    log = tmp_path / "hbot" / "logs" / "logs_conf_lyra_rebalancer.log"
    began = time.monotonic()
    proc = subprocess.Popen(
        [LYRA, "hummingbot", "--headless"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        while time.monotonic() - began < 90:
            if log.exists() and "Lyra governor started" in log.read_text(errors="replace"):
                break
            if proc.poll() is not None:
                pytest.fail(f"Hummingbot exited with {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.3)
        else:
            pytest.fail("no 'Lyra governor started' line in 90 s")
        text = log.read_text(errors="replace")
        assert "Lyra governor started: bot lyra-rebalancer" in text, text[-3000:]
        assert (tmp_path / "hbot" / "conf" / ".password_verification").is_file()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
