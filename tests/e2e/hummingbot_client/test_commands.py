"""Every Hummingbot command Lyra documents parses with Hummingbot 20260922's own parsers.

`start ...` lines (README, docs, the scripts' docstrings, `install-scripts`' output) go through
the terminal's `start` subparser (hummingbot/client/ui/parser.py: `load_parser`), their config
must exist in conf/scripts/ and name an existing script; `hummingbot_quickstart.py ...` lines go
through the installed quickstart's `CmdlineParser`; `lyra-governor hummingbot ...` lines through
Lyra's CLI. So the docs cannot drift from the client again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml

from lyra_governor.hbclient import SHIM_DIR

ROOT = Path(__file__).resolve().parents[3]
COMMAND = re.compile(r"`((?:start|hummingbot_quickstart\.py|lyra-governor hummingbot)\b[^`]*)`")


class _App:
    """Only a holder of the callbacks `load_parser` wires to each command; parsing calls none."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def documented_commands() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "scripts").glob("lyra_*.py"))]
    for path in sources:
        text = path.read_text()
        for match in COMMAND.finditer(text):
            if "[" in match.group(1) or match.group(1) == "hummingbot_quickstart.py":
                continue  # a usage line (`[--root DIR]`) or the file's name, not a command to type
            found.setdefault(match.group(1).strip(), set()).add(path.name)
        for block in re.findall(r"```(?:bash|text)?\n(.*?)```", text, re.S):  # terminal lines in code blocks
            for raw in block.splitlines():
                line = raw.split("#", 1)[0].strip()
                if re.match(r"(start|hummingbot_quickstart\.py|lyra-governor hummingbot)\b", line):
                    found.setdefault(line, set()).add(path.name)
    return found


def install_scripts_output(tmp_path: Path) -> str:
    (tmp_path / "hb" / "scripts").mkdir(parents=True)
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")} | {"COLUMNS": "400"}
    done = subprocess.run(
        [str(exe), "install-scripts", "--hummingbot-dir", str(tmp_path / "hb")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_every_documented_start_command_parses_with_hummingbots_start_parser(tmp_path: Path) -> None:
    import hummingbot.client.hummingbot_application  # noqa: F401 - Hummingbot's import order (parser <-> completer)
    from hummingbot.client.ui.parser import ThrowingArgumentParser, load_parser

    parser: ThrowingArgumentParser = load_parser(_App(), {})
    commands = documented_commands()
    output = install_scripts_output(tmp_path)
    printed = re.findall(r"in Hummingbot: (start [^ ]+ [^ ]+)", output)
    assert printed, output
    starts = {c: where for c, where in commands.items() if c.startswith("start")}
    for line in printed:
        starts.setdefault(line, set()).add("install-scripts")
    sources = set().union(*starts.values())
    assert {"README.md", "install-scripts"} <= sources, sources
    for script in (ROOT / "scripts").glob("lyra_*.py"):  # each script's docstring says how to start it
        assert script.name in sources, f"{script.name}: its docstring has no `start --v2 conf_....yml` line"
    scripts = {p.name for p in (ROOT / "scripts").glob("*.py")}
    for command, where in starts.items():
        try:
            args = parser.parse_args(shlex.split(command))
        except Exception as exc:  # Hummingbot's parser raises on an unknown or missing argument
            raise AssertionError(f"{command!r} (in {sorted(where)}) is not a 20260922 command: {exc}") from exc
        if not args.v2_conf:
            continue  # a bare `start` (the strategy imported before)
        conf = ROOT / "conf" / "scripts" / args.v2_conf
        assert conf.is_file(), (command, where)
        assert yaml.safe_load(conf.read_text())["script_file_name"] in scripts, conf
    # the old form is refused by the same parser (so this test can fail)
    try:
        parser.parse_args(shlex.split("start --script lyra_market_making.py --conf conf_lyra_market_making.yml"))
    except Exception:  # what we expect: "unrecognized arguments"
        pass
    else:
        raise AssertionError("Hummingbot's start parser accepted --script/--conf: this Hummingbot is not 20260922")


def test_documented_headless_commands_parse_with_the_quickstart_and_lyra(tmp_path: Path) -> None:
    commands = documented_commands()
    quick = [c for c in commands if c.startswith("hummingbot_quickstart.py")]
    ours = [c for c in commands if c.startswith("lyra-governor hummingbot")]
    assert quick and ours, commands
    exe = Path(sys.executable).with_name("lyra-governor")
    lyra_env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "SCRIPT_"))}
    lyra_env |= {"CONFIG_PASSWORD": "docs-check", "LYRA_DB_URL": f"sqlite:///{tmp_path / 'lyra.db'}"}
    for line in ours:  # each one, as documented, prepares a root (and would then start Hummingbot)
        words = shlex.split(line)[1:]
        done = subprocess.run(
            [str(exe), *words, "--root", str(tmp_path / "hbot"), "--prepare-only"],
            capture_output=True, text=True, env=lyra_env, timeout=120, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, (line, commands[line], done.stderr)
    script = Path(sysconfig.get_path("scripts")) / "hummingbot_quickstart.py"
    code = (
        "import importlib.util, json, shlex, sys\n"
        f"spec = importlib.util.spec_from_file_location('quickstart', {str(script)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "out = {}\n"
        "for line in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        out[line] = vars(module.CmdlineParser().parse_args(shlex.split(line)[1:]))\n"
        "    except SystemExit:\n"
        "        out[line] = None\n"
        "print(json.dumps(out))\n"
    )
    path = os.pathsep.join([str(SHIM_DIR), *os.environ.get("PYTHONPATH", "").split(os.pathsep)])
    env = dict(os.environ, PYTHONPATH=path, LYRA_HUMMINGBOT_ROOT=str(tmp_path / "hbot"))  # prepared above
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(quick)], capture_output=True, text=True, env=env, timeout=120,
        check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    for line, args in parsed.items():
        assert args is not None, f"{line!r} (in {sorted(commands[line])}) is refused by Hummingbot's quickstart"
        assert args["v2_conf"] and (ROOT / "conf" / "scripts" / args["v2_conf"]).is_file(), line
    # the quickstart reads the variables the compose bots set
    source = script.read_text()
    for name in ("SCRIPT_CONFIG", "CONFIG_PASSWORD", "HEADLESS_MODE"):
        assert f'os.environ["{name}"]' in source, name
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if name.startswith("bot-"):
            env_names = set(service["environment"])
            assert {"SCRIPT_CONFIG", "CONFIG_PASSWORD", "HEADLESS_MODE"} <= env_names, name
            assert "CONFIG_FILE_NAME" not in env_names, f"{name}: CONFIG_FILE_NAME is for V1 strategies"
