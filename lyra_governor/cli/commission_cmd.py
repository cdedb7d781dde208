"""`lyra-governor commission --phase N` and `lyra-governor exchanges validate`.

Both show progress on stderr and a table on stdout; `--json` prints one object instead. The
exit code is 0 when the phase (or the validation gate) passed and 1 when it did not, so scripts
can chain `commission --phase 2 && promote`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from lyra_governor.cli.common import console, echo_name, err_console, print_json, settings

if TYPE_CHECKING:
    from lyra_governor.commissioning.report import Check

exchanges_app = typer.Typer(help="Exchange connectivity through ccxt (Phase 2).", no_args_is_help=True)

VERDICT_STYLE = {
    "PROCEED": "bold green",
    "PROCEED_WITH_CAUTION": "bold yellow",
    "HOLD_OR_INVESTIGATE": "bold red",
    "GRADUAL_STOP": "bold red",
    "ABORT": "bold white on red",
}


@contextmanager
def _progress(enabled: bool, title: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner on stderr whose text each step updates (silent for --json)."""
    if not enabled:
        yield lambda _: None
        return
    with err_console.status(title) as status:

        def step(text: str) -> None:
            status.update(f"{title}: {escape(text)}")

        yield step


def _result_cell(check: Check) -> str:
    if check.passed:
        return "[yellow]WARN[/]" if check.warning else "[green]PASS[/]"
    if check.critical:
        return "[bold white on red]FAIL![/]"
    return "[red]FAIL[/]" if check.gating else "[red]FAIL[/] [dim](info)[/]"


def _checks_table(title: str, checks: list[Check]) -> Table:
    table = Table(title=title, show_lines=False, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(escape(check.name), _result_cell(check), escape(check.detail))
    return table


def _open_runner(ctx: typer.Context, step: Callable[[str], None], phase: int) -> Any:
    from lyra_governor.commissioning.runner import CommissionRunner, council_from_settings, open_settings_vault
    from lyra_governor.errors import LyraError
    from lyra_governor.ledger import open_ledger

    cfg = settings(ctx)
    step("opening the vault")
    try:
        vault = open_settings_vault(cfg)
    except LyraError:
        if phase != 1:
            raise
        vault = None  # phase 1 reports the vault problem as its "vault integrity" check
    step("building the council")
    try:
        council = council_from_settings(cfg, vault)
    except ImportError as exc:
        raise LyraError(f"the council is not available ({exc}); reinstall Lyra with `make install`") from None
    step("opening the ledger")
    ledger = open_ledger(cfg)
    return CommissionRunner(cfg, ledger, council, vault=vault, step=step), ledger


def commission(
    ctx: typer.Context,
    phase: int = typer.Option(..., "--phase", "-p", min=1, max=5, help="The phase to commission (1-5)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Run a phase's checklist, ask the council for its verdict, record the result."""
    with _progress(not as_json, f"commissioning phase {phase}") as step:
        runner, ledger = _open_runner(ctx, step, phase)
        try:
            report = runner.run(phase)
        finally:
            ledger.close()
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(_checks_table(f"Phase {phase} commissioning", report.checks))
        council = report.council
        if council:
            console.print(
                f"council: {council['verdict']} (agreement {council['agreement']:.0%}, "
                f"responses {council['response_rate']:.0%}, threshold {council['threshold']:.0%})"
            )
        style = VERDICT_STYLE.get(report.verdict.value, "bold")
        console.print(
            f"verdict: [{style}]{report.verdict.value}[/] — recorded as evidence phase{phase} "
            f"(audit #{report.audit_seq})"
        )
    if not report.passed:
        raise typer.Exit(1)


@exchanges_app.command("validate")
def validate(
    ctx: typer.Context,
    exchange: list[str] = typer.Option(None, "--exchange", "-e", help="Validate only this exchange (repeatable)."),
    phase: int | None = typer.Option(
        None, "--phase", min=1, max=5, help="Judge key permissions for this phase (default: the ladder's phase, min 2)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Validate exchange connectivity and API keys through ccxt (read-only calls only)."""
    import asyncio

    from lyra_governor.commissioning.phase2 import VALIDATED, phase2_checks
    from lyra_governor.commissioning.runner import open_settings_vault
    from lyra_governor.errors import ConfigError
    from lyra_governor.exchanges import credentials_from_vault, validate_exchanges
    from lyra_governor.ledger import open_ledger

    cfg = settings(ctx)
    names = list(exchange or cfg.exchanges)
    unknown = [n for n in names if n not in cfg.exchanges]
    if unknown:
        raise ConfigError(f"unknown exchange {echo_name(unknown[0])}; configured: {', '.join(cfg.exchanges)}")
    ledger = open_ledger(cfg)
    try:
        judged_phase = phase if phase is not None else max(2, ledger.state().phase)
        with _progress(not as_json, f"validating {len(names)} exchange(s)") as step:
            step("opening the vault")
            creds = credentials_from_vault(open_settings_vault(cfg), names)

            def done(name: str, _: Any) -> None:
                step(f"probed {name}")

            facts = asyncio.run(validate_exchanges(cfg, creds, names, phase=judged_phase, progress=done))
        checks, judgements = phase2_checks(facts, cfg)
        validated = [j.name for j in judgements if j.status == VALIDATED]
        gate = checks[-2]
        ok = gate.passed if not exchange else len(validated) == len(names)
        ledger.audit_append(
            "exchanges_validated",
            {"phase": judged_phase, "exchanges": {j.name: j.status for j in judgements}, "routed_to": facts.api_url},
            "exchanges-validate",
        )
    finally:
        ledger.close()
    if as_json:
        print_json(
            {
                "phase": judged_phase,
                "passed": ok,
                "validated": validated,
                "routed_to": facts.api_url,
                "sandbox": facts.sandbox,
                "checks": [c.to_dict() for c in checks],
            }
        )
    else:
        console.print(_checks_table(f"Exchange validation (phase {judged_phase} permissions)", checks))
        where = f"routed to {facts.api_url}" if facts.api_url else "real exchanges"
        console.print(f"{len(validated)} validated: {', '.join(validated) or 'none'} ({where})")
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `commission` and the `exchanges` group to the root app."""
    app.command("commission")(commission)
    app.add_typer(exchanges_app, name="exchanges")
