"""`--config` after the command is the root's option (`lyra-governor phase --config X`)."""

from __future__ import annotations

from lyra_governor.cli.app import hoist_root_options


def test_config_after_the_command_moves_before_it() -> None:
    assert hoist_root_options(["phase", "--config", "x.yml"]) == ["--config", "x.yml", "phase"]
    assert hoist_root_options(["phase", "--json", "-c", "x.yml"]) == ["-c", "x.yml", "phase", "--json"]
    assert hoist_root_options(["audit", "tail", "--config=x.yml", "-n", "5"]) == [
        "--config=x.yml",
        "audit",
        "tail",
        "-n",
        "5",
    ]


def test_everything_else_is_left_alone() -> None:
    assert hoist_root_options(["--config", "a.yml", "phase"]) == ["--config", "a.yml", "phase"]
    assert hoist_root_options(["--version"]) == ["--version"]
    assert hoist_root_options([]) == []
    assert hoist_root_options(["vault", "set", "k", "--", "--config"]) == ["vault", "set", "k", "--", "--config"]
    assert hoist_root_options(["phase", "--config"]) == ["phase", "--config"]  # click reports the missing value
