"""`CommissionRunner`: run one phase's checklist, ask the council, record the result.

Order of work, for every phase: collect facts (adapters) -> judge them (pure checks) -> ask the
council for its verdict on that evidence -> combine (most restrictive wins) -> write the report
to the ledger's evidence (kind ``phase<N>``, which the ladder's promotion gate reads) and a
``commission`` record plus the council's ``council_verdict`` to the audit trail.

The council, the vault and the exchange credentials are injected, so tests and the CLI hand
in real objects and nothing here reaches for globals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from lyra_governor.commissioning import gates, phase1, phase2
from lyra_governor.commissioning.report import Check, PhaseReport, final_verdict, summarize_council
from lyra_governor.config import Settings
from lyra_governor.consensus import Council
from lyra_governor.errors import LyraError
from lyra_governor.exchanges import Credentials, ValidationFacts, credentials_from_vault, validate_exchanges
from lyra_governor.models import ConsensusResult, CouncilContext
from lyra_governor.vault import Vault, open_vault

ACTOR = "commission"


class CouncilLike(Protocol):
    def decide(self, context: CouncilContext) -> ConsensusResult: ...


def council_from_settings(settings: Settings, vault: Any = None) -> CouncilLike:
    """The configured council (local voters by default, OpenRouter when keys exist)."""
    return Council.from_settings(settings, vault)


def open_settings_vault(settings: Settings) -> Vault | None:
    """The configured vault, None when there is no vault file; a locked or damaged vault is a
    `VaultError` naming the fix (LYRA_VAULT_PASSWORD)."""
    return open_vault(settings)


class CommissionRunner:
    """Commission phases 1-5 against one ledger."""

    def __init__(
        self,
        settings: Settings,
        ledger: Any,
        council: CouncilLike | None,
        *,
        vault: Any = None,
        credentials: Mapping[str, Credentials] | None = None,
        clock: Callable[[], float] = time.time,
        actor: str = ACTOR,
        step: Callable[[str], None] = lambda _: None,
        vault_module: Any = None,
        extra_modes: list[tuple[Path, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.council = council
        self.vault = vault
        self.credentials = credentials
        self.clock = clock
        self.actor = actor
        self.step = step
        self.vault_module = vault_module
        self.extra_modes = extra_modes

    # --- per phase -----------------------------------------------------------------------------

    def _phase1(self) -> tuple[list[Check], dict[str, Any]]:
        if self.council is None:
            raise LyraError("phase 1 needs the council; none could be built")
        facts = phase1.collect_phase1(
            self.settings,
            self.council,
            now=self.clock(),
            vault_module=self.vault_module,
            extra_modes=self.extra_modes,
            step=self.step,
        )
        return phase1.phase1_checks(facts, self.settings), {}

    def _validation(self, phase: int) -> tuple[list[Check], dict[str, Any]]:
        creds = self.credentials
        if creds is None:
            creds = credentials_from_vault(self.vault, list(self.settings.exchanges))
        self.step(f"validating {len(self.settings.exchanges)} exchanges through ccxt")

        def done(name: str, _: Any) -> None:
            self.step(f"probed {name}")

        validation: ValidationFacts = asyncio.run(validate_exchanges(self.settings, creds, phase=phase, progress=done))
        checks, judgements = phase2.phase2_checks(validation, self.settings)
        extra = {
            "exchanges": {j.name: j.status for j in judgements},
            "routed_to": validation.api_url,
            "sandbox": validation.sandbox,
        }
        return checks, extra

    def _gates(self, phase: int) -> tuple[list[Check], dict[str, Any]]:
        self.step("reading the evidence from the ledger")
        facts = gates.collect_gates(self.ledger, phase, self.clock())
        return gates.gate_checks(phase, facts, self.settings), {}

    def checks(self, phase: int) -> tuple[list[Check], dict[str, Any]]:
        """The phase's checks and any extra report fields."""
        if phase == 1:
            return self._phase1()
        if phase == 2:
            return self._validation(2)
        if phase == 3:
            return self._gates(3)
        if phase in (4, 5):
            gate_checks, _ = self._gates(phase)
            exchange_checks, extra = self._validation(phase)
            return gate_checks + exchange_checks, extra
        raise LyraError(f"phase must be one of 1-5, not {phase}")

    # --- council and recording -----------------------------------------------------------------

    def ask_council(self, phase: int, checks: list[Check]) -> ConsensusResult | None:
        if self.council is None:
            return None
        self.step("asking the council for its verdict on the evidence")
        gating = [c for c in checks if c.gating]
        evidence = {
            "phase": phase,
            # only gate checks are "checks"; per-item rows that no gate depends on (one exchange
            # of seven failing while five pass) go as information, so they cannot block alone
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail[:300]} for c in gating],
            "information": [
                {"name": c.name, "ok": c.passed, "detail": c.detail[:200]} for c in checks if not c.gating
            ],
            "failed": sum(1 for c in gating if not c.passed),
            "passed": sum(1 for c in gating if c.passed),
        }
        context = CouncilContext(
            phase=phase,
            question="commission",
            evidence=evidence,
            alerts=[c.name for c in checks if not c.passed and c.gating],
            now=self.clock(),
            note=f"commissioning phase {phase}",
        )
        try:
            return self.council.decide(context)
        except Exception:  # no verdict = HOLD (fail closed); the report says so
            return None

    def run(self, phase: int) -> PhaseReport:
        """Run, judge, ask, record. Returns the report (also stored as evidence ``phase<N>``)."""
        started = self.clock()
        checks, extra = self.checks(phase)
        council = self.ask_council(phase, checks)
        verdict = final_verdict(checks, council)
        report = PhaseReport(
            phase,
            verdict,
            checks,
            summarize_council(council),
            started_at=started,
            finished_at=self.clock(),
            extra=extra,
        )
        if council is None:
            report.checks.append(Check("council verdict", False, "the council gave no verdict; the result is HOLD"))
        self.step("recording the result")
        if council is not None:
            self.ledger.audit_append(
                "council_verdict",
                {"question": "commission", **(report.council or {})},
                self.actor,
            )
        payload = report.to_dict()
        payload.pop("evidence_seq", None)
        payload.pop("audit_seq", None)
        report.evidence_seq = self.ledger.record_evidence(f"phase{phase}", payload, report.passed, self.actor)
        report.audit_seq = self.ledger.audit_append(
            "commission",
            {
                "phase": phase,
                "verdict": verdict.value,
                "passed": report.passed,
                "failed_checks": [c.name for c in checks if not c.passed],
                "evidence_seq": report.evidence_seq,
            },
            self.actor,
        )
        return report
