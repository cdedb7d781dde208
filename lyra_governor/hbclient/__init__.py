"""Start Hummingbot's own client (terminal UI or headless) with Lyra's scripts, from a pip install.

Hummingbot 20260922 on PyPI ships the package and `bin/hummingbot_quickstart.py`, but not the
rest of its source `bin/` (`path_util`, `bin.hummingbot`), and it finds conf/, scripts/ and logs/
next to the package (site-packages). `lyra-governor hummingbot` therefore:

1. prepares a Hummingbot root (`hbot/` by default): conf/ (with conf/scripts/ holding Lyra's
   script configs, copied once so local edits stay), scripts/ (Lyra's scripts, linked to the
   clone), logs/, data/, certs/, and a `hummingbot` link to the installed package (Hummingbot
   reads its templates and connector list through the root);
2. writes conf/conf_client.yml on first start only, with Hummingbot's MQTT bridge pointed at
   Lyra's broker when `mqtt.enabled` (so `lyra-governor halt` stops the bot through Hummingbot's
   own `stop` command); Hummingbot fills in every other default itself;
3. with CONFIG_PASSWORD set, creates conf/.password_verification the way Hummingbot's login
   prompt does on a first start (its own `encrypt_secret_value` of its verification word), or
   checks the password against the existing one, so a headless first start works;
4. runs the installed quickstart with `shim/` on PYTHONPATH: Lyra's `path_util` (points
   `hummingbot.root_path()` at the root) and `bin.hummingbot` (the UI start listener).

A source checkout (the official Docker image: /home/hummingbot) already has bin/, so there the
checkout's own quickstart runs unchanged. The password travels in the environment
(CONFIG_PASSWORD, which the quickstart reads), never on a command line.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from lyra_governor.config import Settings
from lyra_governor.errors import ConfigError

ROOT_ENV = "LYRA_HUMMINGBOT_ROOT"
PASSWORD_ENV = "CONFIG_PASSWORD"  # noqa: S105 - the variable's name (Hummingbot's, as in its Docker image)
DEFAULT_ROOT = Path("hbot")
DEFAULT_CONF = "conf_lyra_market_making.yml"
PAPER_EXCHANGES = ("binance", "kucoin", "kraken", "gate_io", "okx")
SHIM_DIR = Path(__file__).resolve().parent / "shim"
ROOT_DIRS = ("conf", "conf/connectors", "conf/strategies", "conf/scripts", "conf/controllers",
             "scripts", "controllers", "logs", "data", "certs")  # fmt: skip


def hummingbot_package_dir() -> Path:
    """The installed `hummingbot` package folder (found without importing it)."""
    spec = importlib.util.find_spec("hummingbot")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "Hummingbot is not installed in this Python; `make hummingbot` installs it with its client dependencies"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def is_source_checkout(root: Path) -> bool:
    """True when `root` is Hummingbot's own source tree (the package and bin/ live in it)."""
    return (root / "bin" / "hummingbot_quickstart.py").is_file() and hummingbot_package_dir() == (
        root / "hummingbot"
    ).resolve()


def point_hummingbot_at(root: Path) -> None:
    """Make Hummingbot read conf/, scripts/, logs/ and certs/ from `root`. Must run before any
    `hummingbot.client` module is imported (they compute their paths on import)."""
    import hummingbot

    settings_module = sys.modules.get("hummingbot.client.settings")
    if settings_module is not None and Path(settings_module.CONF_DIR_PATH) != root / "conf":
        raise RuntimeError(f"Hummingbot's paths were already computed for {settings_module.CONF_DIR_PATH}")
    hummingbot.root_path = lambda: root  # the module's own global: every later caller sees it
    hummingbot.set_prefix_path(str(root))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def point_hummingbot_at_env_root() -> None:
    """`path_util`'s job inside the Hummingbot process: the root from LYRA_HUMMINGBOT_ROOT, or the
    working folder (as Hummingbot's own path_util does for a packaged install)."""
    point_hummingbot_at(Path(os.environ.get(ROOT_ENV) or os.getcwd()).resolve())


@dataclass
class Prepared:
    """What `prepare_root` did, for the operator and the tests."""

    root: Path
    created: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _lyra_sources() -> tuple[Path, Path]:
    from lyra_governor.cli.scripts_cmd import _source_dirs

    return _source_dirs()


def prepare_root(root: Path, settings: Settings) -> Prepared:
    """Create the root's folders, link Lyra's scripts, copy missing configs, write a first
    conf_client.yml. Idempotent: a second run changes nothing the user edited."""
    root = root.resolve()
    done = Prepared(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file; pass a folder for Hummingbot's root (--root)")
    source_checkout = is_source_checkout(root)
    for name in ROOT_DIRS:
        path = root / name
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            done.created.append(name + "/")
    package_link = root / "hummingbot"
    if not source_checkout:
        target = hummingbot_package_dir()
        if package_link.is_symlink() and package_link.resolve() != target:
            package_link.unlink()  # a venv rebuilt elsewhere: follow it
        if not package_link.exists():
            package_link.symlink_to(target, target_is_directory=True)
            done.created.append("hummingbot -> " + str(target))
        elif not package_link.is_symlink():
            raise ConfigError(
                f"{package_link} exists and is not Hummingbot's package; "
                "use another --root for a pip-installed Hummingbot"
            )
    scripts, confs = _lyra_sources()
    for source in sorted(scripts.glob("lyra_*.py")):
        target = root / "scripts" / source.name
        if target.is_symlink() and target.resolve() == source.resolve():
            continue
        if target.exists() and not target.is_symlink() and target.read_bytes() != source.read_bytes():
            done.kept.append(f"scripts/{source.name}")  # the user's own copy: never overwritten
            continue
        if target.exists() or target.is_symlink():
            target.unlink()
        target.symlink_to(source.resolve())
        done.scripts.append(source.name)
    for source in sorted(confs.glob("conf_lyra_*.yml")):
        target = root / "conf" / "scripts" / source.name
        if not target.exists():
            shutil.copy2(source, target)
            done.configs.append(source.name)
    client = root / "conf" / "conf_client.yml"
    if not client.exists():
        client.write_text(first_client_config(settings), encoding="utf-8")
        done.created.append("conf/conf_client.yml")
    elif settings.mqtt.enabled:
        note = bridge_mismatch(client, settings)
        if note:
            done.notes.append(note)
    return done


def bridge_mismatch(client: Path, settings: Settings) -> str:
    """Why Hummingbot's MQTT bridge in an existing conf_client.yml will not take Lyra's stop
    command, or "" when it will (Lyra never edits the user's file)."""
    import yaml

    try:
        bridge = (yaml.safe_load(client.read_text(encoding="utf-8")) or {}).get("mqtt_bridge") or {}
    except (OSError, yaml.YAMLError):
        return f"{client} cannot be read as YAML; Hummingbot will say why when it starts"
    wanted = {"mqtt_port": settings.mqtt.port, "mqtt_namespace": settings.mqtt.namespace}
    wrong = [f"{k} is {bridge[k]!r}, Lyra's {v!r}" for k, v in wanted.items() if k in bridge and bridge[k] != v]
    wrong += [f"{k} is not true" for k in ("mqtt_autostart", "mqtt_commands") if bridge.get(k) is not True]
    if not wrong:
        return ""
    return (
        f"Hummingbot's MQTT bridge in {client} will not take `lyra-governor halt`'s stop command ("
        + "; ".join(wrong)
        + "): halts still reach the bot through the store; set mqtt_bridge there to match Lyra's mqtt settings"
    )


def first_client_config(settings: Settings) -> str:
    """The part of conf_client.yml Lyra sets on a first start; Hummingbot adds its defaults
    (and an instance_id) when it loads the file and writes it back."""
    lines = [
        "# Written by `lyra-governor hummingbot` on the first start; Hummingbot fills in the rest.",
        "# Paper connectors for the exchanges Lyra's script configs name (okx is not in Hummingbot's default list).",
        "paper_trade:",
        f"  paper_trade_exchanges: [{', '.join(PAPER_EXCHANGES)}]",
    ]
    if settings.mqtt.enabled:
        lines += [
            "mqtt_bridge:",
            f"  mqtt_host: {settings.mqtt.host}",
            f"  mqtt_port: {settings.mqtt.port}",
            f"  mqtt_namespace: {settings.mqtt.namespace}",
            "  mqtt_commands: true",
            "  mqtt_autostart: true",
        ]
    return "\n".join(lines) + "\n"


def ensure_password_verification(root: Path, password: str) -> str:
    """Create conf/.password_verification from `password` as Hummingbot's first-start login
    prompt does, or check `password` against the one there. Returns what happened."""
    from hummingbot.client.config.config_crypt import PASSWORD_VERIFICATION_WORD, ETHKeyFileSecretManger

    path = root / "conf" / ".password_verification"
    manager = ETHKeyFileSecretManger(password)
    if not path.exists():
        path.write_text(manager.encrypt_secret_value(PASSWORD_VERIFICATION_WORD, PASSWORD_VERIFICATION_WORD))
        path.chmod(0o600)
        return "created conf/.password_verification from CONFIG_PASSWORD"
    try:
        word = manager.decrypt_secret_value(PASSWORD_VERIFICATION_WORD, path.read_text().strip())
    except ValueError:  # eth_keyfile's "MAC mismatch"
        word = ""
    except Exception as exc:
        raise ConfigError(
            f"{path} cannot be read ({type(exc).__name__}); delete it to set a new password on the next start "
            "(connector keys encrypted with the old one must then be entered again)"
        ) from None
    if word != PASSWORD_VERIFICATION_WORD:
        raise ConfigError(
            f"CONFIG_PASSWORD does not unlock this Hummingbot root ({path}); use the password it was created "
            "with, or another --root"
        )
    return "CONFIG_PASSWORD matches conf/.password_verification"


def lyra_env(settings: Settings) -> dict[str, str]:
    """LYRA_* variables that give the bot's governor the settings this command loaded, with
    relative paths made absolute: Hummingbot runs in its root (it finds scripts/ relative to its
    working folder), and the bot must share the store `lyra-governor halt` writes here."""
    env = {
        "LYRA_DATA_DIR": str(settings.data_dir.resolve()),
        "LYRA_VAULT_PATH": str(settings.vault_path.resolve()),
    }
    if settings.db_path is not None:
        env["LYRA_DB_URL"] = "sqlite:///" + str(settings.db_path.resolve())
    if settings.source and not settings.source.startswith("<"):
        env["LYRA_CONFIG"] = str(Path(settings.source).resolve())
    return env


def quickstart_command(
    root: Path, headless: bool, v2_conf: str | None, settings: Settings
) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run Hummingbot's quickstart for `root` (run it in `root`)."""
    root = root.resolve()
    env = dict(os.environ)
    env.update(lyra_env(settings))
    env["PYTHONUNBUFFERED"] = "1"
    if is_source_checkout(root):
        script = root / "bin" / "hummingbot_quickstart.py"
    else:
        script = Path(sysconfig.get_path("scripts")) / "hummingbot_quickstart.py"
        if not script.is_file():
            script = Path(sys.executable).parent / "hummingbot_quickstart.py"
        if not script.is_file():
            raise ConfigError(
                "hummingbot_quickstart.py is not installed next to this Python; "
                "reinstall Hummingbot (`make hummingbot`)"
            )
        env[ROOT_ENV] = str(root)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIM_DIR), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, str(script)]
    if v2_conf:
        argv += ["--v2", v2_conf]
    if headless:
        argv += ["--headless"]
    return argv, env
