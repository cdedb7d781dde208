"""The compliance schedule: 15 min AI health, 30 min performance, 1 h risk, 4 h system audit,
24 h signed forensic report.

Why it is built this way:
- `CheckpointRunner.run_due(now)` is driven by whoever owns the loop (`lyra-governor serve`)
  and by an injectable clock in tests; it keeps no timers of its own.
- When a checkpoint last ran is read back from the ledger (evidence ``checkpoint.<name>``), so
  a restart neither repeats nor forgets a checkpoint, and several processes agree.
- A checkpoint that did not run within half an interval of its slot is *missed*; each missed
  slot is an ``alert`` in the audit trail (level WARNING: a gap in oversight, not a trading fault).
- Every result is evidence, and so also an audit record, in one transaction.
- The 24 h forensic report is signed with Ed25519 over its canonical JSON, which includes the
  audit chain head (sequence and hash). `verify_reports` checks each signature against the key
  in ``<data_dir>/keys`` *and* that the chain still has that hash at that sequence, so neither
  the report nor the history it vouches for can be rewritten unnoticed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lyra_governor import audit, phases
from lyra_governor.config import Settings
from lyra_governor.consensus import Council
from lyra_governor.errors import LyraError
from lyra_governor.models import CouncilContext
from lyra_governor.money import from_musd

log = logging.getLogger(__name__)

ACTOR = "checkpoints"
TICK_S = 60.0
GRACE = 0.5  # a slot not run within half an interval of its time is missed
KEY_NAME = "forensic_ed25519"
VAULT_KEY = "forensic/ed25519"


@dataclass(frozen=True)
class CheckpointSpec:
    name: str
    interval_s: float
    title: str

    @property
    def evidence_kind(self) -> str:
        """The evidence kind its runs are recorded under."""
        return evidence_kind(self.name)


def evidence_kind(name: str) -> str:
    return f"checkpoint.{name}"


SCHEDULE: tuple[CheckpointSpec, ...] = (
    CheckpointSpec("ai_health", 15 * 60, "AI health check"),
    CheckpointSpec("performance_review", 30 * 60, "performance review"),
    CheckpointSpec("risk_update", 60 * 60, "risk update"),
    CheckpointSpec("system_audit", 4 * 3600, "system audit"),
    CheckpointSpec("forensic_report", 24 * 3600, "forensic report"),
)


@dataclass
class CheckpointResult:
    name: str
    ok: bool
    summary: str
    ran_at: float
    missed: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    audit_seq: int | None = None
    report_path: str | None = None


# --- schedule (pure) ---------------------------------------------------------------------------


def missed_slots(next_due: float, interval_s: float, now: float, grace: float = GRACE) -> int:
    """Slots (at next_due + k*interval) whose grace period ended before `now` without a run."""
    late = now - next_due - grace * interval_s
    return max(0, math.ceil(late / interval_s)) if late > 0 else 0


def next_due(last_run: float | None, started_at: float, interval_s: float) -> float:
    """A checkpoint never run is due at once (a baseline when serving starts)."""
    return started_at if last_run is None else last_run + interval_s


# --- signing ---------------------------------------------------------------------------------


def key_paths(settings: Settings) -> tuple[Path, Path]:
    folder = Path(settings.data_dir) / "keys"
    return folder / KEY_NAME, folder / f"{KEY_NAME}.pub"


def _fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_key(settings: Settings, vault: Any = None) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key, created on first use: in the vault (secret ``forensic/ed25519``) when
    one is open, else in ``<data_dir>/keys`` (0600 in a 0700 folder). The public key always goes
    to ``<data_dir>/keys`` for `verify_reports`. A public key without its private key (kept in a
    vault that is not open now) is an error: signing with a new key would orphan old reports."""
    private_path, public_path = key_paths(settings)
    pem: bytes | None = None
    if vault is not None and VAULT_KEY in vault.names():
        pem = vault.get(VAULT_KEY).encode()
    elif private_path.exists():
        pem = private_path.read_bytes()
    if pem is not None:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise LyraError(f"the forensic signing key ({private_path} or vault {VAULT_KEY}) is not an Ed25519 key")
        return key, False
    if public_path.exists():
        raise LyraError(
            f"the forensic signing key is not available ({public_path} exists but its private key does not); "
            "it is kept in the vault: set LYRA_VAULT_PASSWORD"
        )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(private_path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if vault is not None:
        vault.set(VAULT_KEY, pem.decode())
    else:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key, True


def sign_report(report: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed envelope: the report, its Ed25519 signature and the key's fingerprint."""
    message = audit.canonical_json(report).encode()
    return {
        "report": report,
        "algorithm": "Ed25519",
        "key_fingerprint": _fingerprint(key.public_key()),
        "signature": base64.b64encode(key.sign(message)).decode(),
    }


@dataclass(frozen=True)
class ReportCheck:
    path: str
    ok: bool
    problem: str = ""


def reports_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "reports"


def verify_reports(
    settings: Settings, engine: sa.engine.Engine | None = None, paths: Sequence[Path] = ()
) -> list[ReportCheck]:
    """Check every signed forensic report (default: all in ``<data_dir>/reports``).

    A report passes when its signature verifies with the public key in ``<data_dir>/keys`` and,
    given the ledger's `engine`, the audit chain still holds the signed head hash at the signed
    sequence number. No reports at all is an empty list, not a failure.
    """
    files = list(paths) or sorted(reports_dir(settings).glob("forensic-*.json"))
    if not files:
        return []
    _, public_path = key_paths(settings)
    try:
        public = serialization.load_pem_public_key(public_path.read_bytes())
    except (OSError, ValueError) as exc:
        return [ReportCheck(str(f), False, f"public key {public_path} unreadable ({exc})") for f in files]
    if not isinstance(public, Ed25519PublicKey):
        return [ReportCheck(str(f), False, f"{public_path} is not an Ed25519 public key") for f in files]
    results = []
    for path in files:
        try:
            envelope = json.loads(Path(path).read_text())
            report = envelope["report"]
            signature = base64.b64decode(envelope["signature"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            results.append(ReportCheck(str(path), False, f"unreadable report ({type(exc).__name__})"))
            continue
        try:
            public.verify(signature, audit.canonical_json(report).encode())
        except InvalidSignature:
            results.append(ReportCheck(str(path), False, "signature does not match: the report was altered"))
            continue
        if engine is not None:
            head = report.get("audit", {})
            seq, signed_hash = int(head.get("head_seq", 0)), str(head.get("head_hash", ""))
            if seq > 0:
                actual = audit.hash_at(engine, seq)
                if actual != signed_hash:
                    results.append(
                        ReportCheck(
                            str(path), False, f"audit record {seq} no longer has the signed hash: history changed"
                        )
                    )
                    continue
        results.append(ReportCheck(str(path), True))
    return results


# --- the runner ------------------------------------------------------------------------------


def _dec(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f")


class CheckpointRunner:
    """Runs the checkpoints that are due; `lyra-governor serve` calls `run_due` every minute."""

    def __init__(
        self,
        settings: Settings,
        ledger: Any,
        clock: Callable[[], float] = time.time,
        *,
        council: Any = None,
        vault: Any = None,
        actor: str = ACTOR,
        started_at: float | None = None,
        schedule: Sequence[CheckpointSpec] = SCHEDULE,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.clock = clock
        self.council = council
        self.vault = vault
        self.actor = actor
        self.schedule = list(schedule)
        self.started_at = clock() if started_at is None else started_at
        self._bodies: dict[str, Callable[[float], CheckpointResult]] = {
            "ai_health": self._ai_health,
            "performance_review": self._performance,
            "risk_update": self._risk,
            "system_audit": self._system_audit,
            "forensic_report": self._forensic,
        }

    # --- schedule ---------------------------------------------------------------------------

    def last_run(self, name: str) -> float | None:
        record = self.ledger.latest_evidence(evidence_kind(name))
        if record is None:
            return None
        return float(record.payload.get("ran_at", record.ts))

    def due(self, now: float | None = None) -> dict[str, float]:
        """Each checkpoint's next due time (already past = due now)."""
        return {s.name: next_due(self.last_run(s.name), self.started_at, s.interval_s) for s in self.schedule}

    def run_due(self, now: float | None = None) -> list[CheckpointResult]:
        """Run every checkpoint whose time has come; flag missed slots as alerts first."""
        now = self.clock() if now is None else now
        results = []
        for spec in self.schedule:
            due_at = next_due(self.last_run(spec.name), self.started_at, spec.interval_s)
            if now < due_at:
                continue
            missed = missed_slots(due_at, spec.interval_s, now)
            if missed:
                self.ledger.audit_append(
                    "alert",
                    {
                        "level": "WARNING",
                        "source": "checkpoints",
                        "checkpoint": spec.name,
                        "missed": missed,
                        "message": f"{spec.title} missed {missed} slot(s); it was due at {due_at:.0f}",
                    },
                    self.actor,
                )
            results.append(self.run(spec.name, now, missed))
        return results

    def run_forever(self, stop: threading.Event, tick_s: float = TICK_S) -> None:
        """Call `run_due` every `tick_s` until `stop` is set (for a thread in `serve`).

        A failing tick is logged and retried on the next one; it never ends the loop."""
        while not stop.is_set():
            try:
                self.run_due()
            except Exception:
                log.exception("checkpoint tick failed; retrying in %.0f s", tick_s)
            stop.wait(tick_s)

    async def arun_forever(self, stop: asyncio.Event, tick_s: float = TICK_S) -> None:
        """The same loop for an asyncio server: each tick runs in a worker thread, so the
        council's synchronous `decide` and the database never block the event loop."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_due)
            except Exception:
                log.exception("checkpoint tick failed; retrying in %.0f s", tick_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)

    def run(self, name: str, now: float | None = None, missed: int = 0) -> CheckpointResult:
        """Run one checkpoint now (due or not) and record it."""
        now = self.clock() if now is None else now
        try:
            result = self._bodies[name](now)
        except Exception as exc:  # a checkpoint that crashes is a failed checkpoint, on record
            result = CheckpointResult(name, False, f"checkpoint failed: {type(exc).__name__}: {exc}"[:300], now)
        result.missed = missed
        payload = {"ran_at": now, "summary": result.summary, "missed": missed, **result.data}
        if result.report_path:
            payload["report_path"] = result.report_path
        result.audit_seq = self.ledger.record_evidence(evidence_kind(name), payload, result.ok, self.actor)
        return result

    # --- bodies -----------------------------------------------------------------------------

    def _council(self) -> Any:
        if self.council is None:
            self.council = Council.from_settings(self.settings, self.vault)
        return self.council

    def _ai_health(self, now: float) -> CheckpointResult:
        phase = self.ledger.state().phase
        result = self._council().decide(CouncilContext(phase=phase, question="health", now=now, note="checkpoint"))
        need = self.settings.threshold(1)
        ok = result.response_rate > need and result.verdict.value != "ABORT" and not result.degraded
        missing = ", ".join(f"{n} {kind}" for kind, n in sorted(result.no_answer.items()))
        return CheckpointResult(
            "ai_health",
            ok,
            f"{result.response_rate:.0%} of voters answered (need > {need:.0%}); verdict {result.verdict.value}"
            + (f"; degraded (quorum {result.quorum:.0%})" if result.degraded else "")
            + (f"; no answer: {missing}" if missing else ""),
            now,
            data={
                "response_rate": result.response_rate,
                "verdict": result.verdict.value,
                "agreement": result.agreement,
                "degraded": result.degraded,
                "no_answer": result.no_answer,
            },
        )

    def _performance(self, now: float) -> CheckpointResult:
        since = now - 1800
        rows = self.ledger.fill_rows(since)
        notional = sum((from_musd(int(r["notional_musd"])) for r in rows), Decimal(0))
        fees = sum((from_musd(int(r["fee_musd"])) for r in rows), Decimal(0))
        bots = self.ledger.bots()
        silent = [b.bot_id for b in bots if now - b.last_heartbeat > self.settings.risk.heartbeat_timeout_s]
        return CheckpointResult(
            "performance_review",
            not silent,
            f"{len(rows)} fills, {_dec(notional)} USD traded, {_dec(fees)} USD fees in 30 min; "
            f"{len(bots) - len(silent)}/{len(bots)} bots alive" + (f"; silent: {', '.join(silent)}" if silent else ""),
            now,
            data={"fills": len(rows), "notional_usd": _dec(notional), "fees_usd": _dec(fees), "silent_bots": silent},
        )

    def _risk(self, now: float) -> CheckpointResult:
        state = self.ledger.state()
        exposure = self.ledger.exposure()
        over = [n for n, s in exposure.exchanges.items() if s.used_usd > s.cap_usd and s.used_usd > 0]
        util = {n: float(s.used_usd / s.cap_usd) if s.cap_usd > 0 else 0.0 for n, s in exposure.exchanges.items()}
        totals_ok, why = self.ledger.totals_agree()
        ok = not over and totals_ok
        return CheckpointResult(
            "risk_update",
            ok,
            f"phase {state.phase} {state.trading_state.value}; {exposure.book} used {_dec(exposure.total.used_usd)} of "
            f"{_dec(exposure.total.cap_usd)} USD" + (f"; OVER CAP: {', '.join(over)}" if over else "")
            + ("" if totals_ok else f"; {why}"),
            now,
            data={"phase": state.phase, "trading_state": state.trading_state.value, "utilization": util,
                  "over_cap": over},
        )  # fmt: skip

    def _system_audit(self, now: float) -> CheckpointResult:
        verified = audit.verify(self.ledger.engine)
        problems = [] if verified.ok else [f"audit chain broken at record {verified.first_broken}: {verified.problem}"]
        if self.vault is not None:
            try:
                self.vault.verify()
            except Exception as exc:
                problems.append(f"vault: {exc}")
        signed = verify_reports(self.settings, self.ledger.engine)
        problems += [f"{Path(r.path).name}: {r.problem}" for r in signed if not r.ok]
        free_gb = shutil.disk_usage(_existing(Path(self.settings.data_dir))).free / 1e9
        if free_gb < self.settings.commissioning.min_free_disk_gb:
            problems.append(f"only {free_gb:.1f} GB disk free")
        return CheckpointResult(
            "system_audit",
            not problems,
            "; ".join(problems) if problems else
            f"audit chain intact ({verified.count} records), {len(signed)} signed report(s) verified, "
            f"{free_gb:.1f} GB free",
            now,
            data={"audit_ok": verified.ok, "audit_count": verified.count, "reports_checked": len(signed),
                  "free_disk_gb": round(free_gb, 2)},
        )  # fmt: skip

    def _forensic(self, now: float) -> CheckpointResult:
        key, created = load_or_create_key(self.settings, self.vault)
        if created:
            where = "vault" if self.vault is not None else "file"
            self.ledger.audit_append(
                "forensic_key_created",
                {"fingerprint": _fingerprint(key.public_key()), "algorithm": "Ed25519", "kept_in": where},
                self.actor,
            )
        verified = audit.verify(self.ledger.engine)
        state = self.ledger.state()
        exposures = {}
        for book in (phases.PAPER_BOOK, phases.LIVE_BOOK):
            exp = self.ledger.exposure(book)
            exposures[book] = {
                name: {
                    "cap_usd": _dec(s.cap_usd),
                    "reserved_usd": _dec(s.reserved_usd),
                    "deployed_usd": _dec(s.deployed_usd),
                }
                for name, s in [*exp.exchanges.items(), ("TOTAL", exp.total)]
            }
        recent = [r for r in audit.tail(self.ledger.engine, 5000) if r.ts >= now - 86_400]
        alerts = [r.payload for r in recent if r.event == "alert"]
        evidence = {}
        for kind in ("phase1", "phase2", "phase3", "phase3_paper", "phase4", "phase5", "drill"):
            rec = self.ledger.latest_evidence(kind)
            if rec is not None:
                evidence[kind] = {"passed": rec.passed, "ts": rec.ts, "audit_seq": rec.audit_seq}
        report = {
            "kind": "lyra-forensic-report",
            "generated_at": now,
            "period_s": 86_400,
            "state": {"phase": state.phase, "trading_state": state.trading_state.value, "reason": state.reason,
                      "rungs": state.rungs},
            "exposure": exposures,
            "audit": {"ok": verified.ok, "count": verified.count, "head_seq": verified.head_seq,
                      "head_hash": verified.head_hash},
            "activity_24h": {"records": len(recent), "events": _count(r.event for r in recent),
                             "fills": len(self.ledger.fill_rows(now - 86_400))},
            "alerts_24h": alerts[-50:],
            "evidence": evidence,
        }  # fmt: skip
        envelope = sign_report(report, key)
        folder = reports_dir(self.settings)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        path = folder / f"forensic-{stamp}.json"
        path.write_text(json.dumps(envelope, indent=2, sort_keys=True, default=str))
        return CheckpointResult(
            "forensic_report",
            verified.ok,
            f"signed report {path.name} over audit head #{verified.head_seq} {verified.head_hash[:16]}…"
            + ("" if verified.ok else f"; AUDIT CHAIN BROKEN at {verified.first_broken}"),
            now,
            data={"head_seq": verified.head_seq, "head_hash": verified.head_hash,
                  "key_fingerprint": envelope["key_fingerprint"]},
            report_path=str(path),
        )  # fmt: skip


def _count(events: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for event in events:
        out[event] = out.get(event, 0) + 1
    return out


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
