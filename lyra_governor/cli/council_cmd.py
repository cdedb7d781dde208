"""`lyra-governor council check`: the Phase-1 step — ask every role, show how the council stands.
`lyra-governor council models`: OpenRouter's catalogue against each role's slug and fallbacks."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from lyra_governor.cli.common import console, print_json, settings

council_app = typer.Typer(help="The AI council of eight roles.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(council_app, name="council")


@council_app.command("check")
def check_cmd(
    ctx: typer.Context,
    phase: int | None = typer.Option(
        None, "--phase", min=1, max=5, help="Judge at this phase's threshold (default: the ladder's current phase)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Ask every role a health question; exit 0 only when the verdict is PROCEED."""
    from lyra_governor.consensus import Council
    from lyra_governor.ledger import Ledger
    from lyra_governor.models import CouncilContext, Verdict

    cfg = settings(ctx)
    ledger = Ledger.open(cfg)
    try:
        current = ledger.state()
        vault = _vault_or_none(cfg)
        council = Council.from_settings(cfg, vault)
        context = CouncilContext(
            phase=phase or current.phase,
            question="health",
            now=time.time(),
            evidence={"check": "council responsiveness"},
        )
        gone = council.models_gone()
        result = council.decide(context)
        ledger.audit_append(
            "council_verdict",
            {
                "question": "health",
                "verdict": result.verdict.value,
                "agreement": result.agreement,
                "response_rate": result.response_rate,
                "consensus_id": result.consensus_id,
                "cost_usd": result.cost_usd,
                "degraded": result.degraded,
                "no_answer": result.no_answer,
                "models_gone": gone,
            },
            "operator",
        )
    finally:
        ledger.close()
    if as_json:
        print_json(
            {
                "verdict": result.verdict.value,
                "phase": result.phase,
                "agreement": result.agreement,
                "threshold": result.threshold,
                "response_rate": result.response_rate,
                "mean_confidence": result.mean_confidence,
                "latency_s": round(result.latency_s, 4),
                "cost_usd": result.cost_usd,
                "backend": cfg.consensus.backend,
                "degraded": result.degraded,
                "quorum": result.quorum,
                "models_gone": gone,
                "reasons": result.reasons,
                "models": [
                    {
                        "role": b.role,
                        "model": b.model,
                        "answered": b.answered,
                        "decision": b.vote.decision.value if b.vote else None,
                        "risk": b.vote.risk.value if b.vote else None,
                        "confidence": b.vote.confidence if b.vote else None,
                        "latency_s": round(b.latency_s, 4),
                        "cost_usd": b.cost_usd,
                        "error": b.error,
                        "error_kind": b.error_kind,
                    }
                    for b in result.ballots
                ],
            }
        )
    else:
        table = Table(title=f"AI council ({cfg.consensus.backend} voters) — phase {result.phase}")
        for column in ("role", "model", "decision", "risk", "confidence", "latency", "cost", "note"):
            table.add_column(column)
        for b in result.ballots:
            vote = b.vote
            table.add_row(
                b.role,
                b.model,
                vote.decision.value if vote else "[red]no answer[/]",
                vote.risk.value if vote else "-",
                f"{vote.confidence:.0%}" if vote else "-",
                f"{b.latency_s * 1000:.1f} ms",
                f"${b.cost_usd:.4f}",
                (vote.rationale if vote else b.error or "")[:60],
            )
        console.print(table)
        colour = "green" if result.verdict is Verdict.PROCEED else "red"
        console.print(
            f"verdict [bold {colour}]{result.verdict.value}[/]: agreement {result.agreement:.0%} "
            f"(threshold {result.threshold:.0%}), response rate {result.response_rate:.0%}, "
            f"mean confidence {result.mean_confidence:.0%}, {result.latency_s * 1000:.1f} ms, "
            f"${result.cost_usd:.4f}" + (" [bold red]DEGRADED[/] (quorum not met)" if result.degraded else "")
        )
        for line in gone:
            console.print(f"[red]{line}[/]")
    raise typer.Exit(0 if result.verdict is Verdict.PROCEED and not gone else 1)


@council_app.command("models")
def models_cmd(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Read OpenRouter's model list: per role, which slug it will use, context length, prices per
    million tokens and structured-output support. Exit 1 when a role's slug and fallbacks are all
    gone or the catalogue cannot be read."""
    from lyra_governor.consensus.catalogue import load_catalogue, resolve_roles, role_slugs

    cfg = settings(ctx)
    catalogue, source = load_catalogue(cfg, refresh=True)
    if catalogue is None:
        if as_json:
            print_json({"ok": False, "error": source, "roles": []})
        else:
            console.print(
                f"[red]cannot read OpenRouter's model list: {source}[/]; check consensus.openrouter_base_url "
                "and the network"
            )
        raise typer.Exit(1)
    rows = []
    for role, m in zip(cfg.consensus.roles, resolve_roles(cfg, catalogue), strict=True):
        info = m.info
        rows.append(
            {
                "role": m.role,
                "configured": m.configured,
                "fallbacks": role_slugs(role)[1:],
                "model": m.chosen,
                "state": m.state,
                "missing": m.missing,
                "context_length": info.context_length if info else None,
                "prompt_usd_per_mtok": info.per_million("prompt") if info else None,
                "completion_usd_per_mtok": info.per_million("completion") if info else None,
                "structured_outputs": info.structured_outputs if info else None,
                "response_format": m.response_format(role.response_format) if info else None,
                "note": m.describe(),
            }
        )
    gone = [r["role"] for r in rows if r["state"] == "gone"]
    if as_json:
        print_json({"ok": not gone, "source": source, "models_listed": len(catalogue.models), "gone": gone,
                    "roles": rows})  # fmt: skip
    else:
        table = Table(title=f"OpenRouter catalogue: {source}")
        for column in ("role", "model", "state", "context", "$/M in", "$/M out", "structured", "retired"):
            table.add_column(column)
        for r in rows:
            colour = {"ok": "green", "fallback": "yellow"}.get(str(r["state"]), "red")
            table.add_row(
                str(r["role"]),
                str(r["model"] or r["configured"]),
                f"[{colour}]{r['state']}[/]",
                f"{r['context_length']:,}" if r["context_length"] else "-",
                _money(r["prompt_usd_per_mtok"]),
                _money(r["completion_usd_per_mtok"]),
                {True: "yes", False: "no", None: "-"}[r["structured_outputs"]],  # type: ignore[index]
                ", ".join(r["missing"]) + " gone" if r["missing"] else "",  # type: ignore[arg-type]
            )
        console.print(table)
        for r in rows:
            if r["state"] != "ok":
                console.print(f"[{'red' if r['state'] == 'gone' else 'yellow'}]{r['note']}[/]")
    raise typer.Exit(1 if gone else 0)


def _money(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _vault_or_none(cfg: object) -> object | None:
    """The vault when the vault module and a vault file exist; None otherwise (env keys)."""
    import importlib

    try:
        vault_module = importlib.import_module("lyra_governor.vault")
    except ImportError:
        return None
    vault: object | None = vault_module.open_vault(cfg)
    return vault
