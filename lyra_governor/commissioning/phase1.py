"""Phase 1 (foundation and AI consensus): is the ground solid before any exchange is touched?

`phase1_checks` is pure: it judges `Phase1Facts`. `collect_phase1` is the adapter that gathers
them (council ping, scratch-vault rotation, vault integrity, file modes, /healthz, headroom).
Why these checks: the council must answer (> 70 % of voters) or every later decision is HOLD;
the vault must open, verify and rotate or keys cannot be trusted or changed; secrets files
must not be readable by others; monitoring must be up before capital moves; and a machine
without CPU, memory or disk headroom drops ticks and fills.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lyra_governor import vault
from lyra_governor.commissioning.report import Check
from lyra_governor.config import Settings
from lyra_governor.errors import LyraError
from lyra_governor.models import CouncilContext

SERVE_COMMAND = "lyra-governor serve"


@dataclass(frozen=True)
class FileMode:
    path: str
    mode: int | None  # None: the file does not exist
    max_mode: int  # permission bits allowed at most, e.g. 0o600

    @property
    def ok(self) -> bool:
        return self.mode is None or (self.mode & ~self.max_mode) == 0


@dataclass
class Phase1Facts:
    council_response_rate: float | None = None
    council_error: str = ""
    council_degraded: bool = False
    council_models_gone: list[str] = field(default_factory=list)  # one sentence per role with no live slug
    council_models_note: str = ""
    rotation_ok: bool | None = None
    rotation_detail: str = ""
    vault_present: bool = False
    vault_ok: bool | None = None
    vault_detail: str = ""
    file_modes: list[FileMode] = field(default_factory=list)
    monitoring_url: str = ""
    monitoring_ok: bool = False
    monitoring_detail: str = ""
    load_per_cpu: float | None = None
    free_memory_pct: float | None = None
    free_disk_gb: float | None = None


def phase1_checks(facts: Phase1Facts, settings: Settings) -> list[Check]:
    """The Phase-1 checklist, judged from facts alone."""
    opts = settings.commissioning
    need = settings.threshold(1)
    checks: list[Check] = []

    rate = facts.council_response_rate
    if rate is None:
        checks.append(Check("council responsiveness", False, f"the council could not be asked: {facts.council_error}"))
    else:
        checks.append(
            Check(
                "council responsiveness",
                rate > need,
                f"{rate:.0%} of voters answered (need more than {need:.0%})"
                + ("" if rate > need else "; check OpenRouter keys (`lyra-governor council`) or use backend: local"),
                data={"response_rate": rate},
            )
        )

    gone = facts.council_models_gone
    checks.append(
        Check(
            "council models",
            not gone,
            "; ".join(gone) if gone else facts.council_models_note or "every role has a live model",
            data={"gone": gone},
        )
    )

    checks.append(
        Check(
            "key rotation",
            bool(facts.rotation_ok),
            facts.rotation_detail or "not exercised",
        )
    )

    if not facts.vault_present:
        checks.append(
            Check(
                "vault integrity",
                False,
                f"no vault at {settings.vault_path}; create it with `lyra-governor vault init` "
                "and set LYRA_VAULT_PASSWORD",
            )
        )
    else:
        checks.append(Check("vault integrity", bool(facts.vault_ok), facts.vault_detail))

    bad = [f for f in facts.file_modes if not f.ok]
    shown = ", ".join(f"{f.path} {oct(f.mode or 0)} (max {oct(f.max_mode)})" for f in bad)
    checks.append(
        Check(
            "file modes",
            not bad,
            f"unsafe permissions: {shown}; fix with chmod" if bad else
            f"{sum(1 for f in facts.file_modes if f.mode is not None)} secret files and folders private",
        )
    )  # fmt: skip

    checks.append(
        Check(
            "monitoring server",
            facts.monitoring_ok,
            f"{facts.monitoring_url} answered" if facts.monitoring_ok else
            f"{facts.monitoring_url} not reachable ({facts.monitoring_detail}); start it with `{SERVE_COMMAND}`",
        )
    )  # fmt: skip

    problems: list[str] = []
    figures: list[str] = []
    if facts.load_per_cpu is not None:
        figures.append(f"load {facts.load_per_cpu:.2f}/CPU")
        if facts.load_per_cpu > opts.max_load_per_cpu:
            problems.append(f"CPU load {facts.load_per_cpu:.2f} per CPU above {opts.max_load_per_cpu}")
    if facts.free_memory_pct is not None:
        figures.append(f"{facts.free_memory_pct:.0f} % memory free")
        if facts.free_memory_pct < opts.min_free_memory_pct:
            problems.append(f"only {facts.free_memory_pct:.0f} % memory free (need {opts.min_free_memory_pct:.0f} %)")
    if facts.free_disk_gb is not None:
        figures.append(f"{facts.free_disk_gb:.1f} GB disk free")
        if facts.free_disk_gb < opts.min_free_disk_gb:
            problems.append(f"only {facts.free_disk_gb:.1f} GB disk free (need {opts.min_free_disk_gb:g} GB)")
    checks.append(
        Check(
            "resource headroom",
            not problems,
            "; ".join(problems) + "; free resources or move Lyra" if problems else ", ".join(figures),
            data={"load_per_cpu": facts.load_per_cpu, "free_memory_pct": facts.free_memory_pct,
                  "free_disk_gb": facts.free_disk_gb},
        )
    )  # fmt: skip
    return checks


# --- adapters --------------------------------------------------------------------------------


def council_models(council: Any) -> tuple[list[str], str]:
    """(roles whose slug and fallbacks are all gone, a note): from the council's voters, which
    resolved their slugs against the catalogue when they were built."""
    resolved = list(getattr(council, "role_models", list)())
    if not resolved:
        return [], "local voters: no model catalogue needed"
    gone = [m.describe() for m in resolved if m.gone]
    if all(m.state == "unchecked" for m in resolved):
        return gone, "OpenRouter's catalogue could not be read: slugs unchecked (404s fall back at call time)"
    fallbacks = [m.describe() for m in resolved if m.state == "fallback"]
    return gone, "; ".join(fallbacks) if fallbacks else f"all {len(resolved)} roles on their configured model"


def _vault_module() -> Any:
    """The vault module (injectable in `collect_phase1` so a test can hand in another)."""
    return vault


def exercise_rotation(vault_module: Any) -> tuple[bool, str]:
    """Create a scratch vault, store a value, rotate its password, and prove that the new
    password opens it with the value intact while the old one no longer does."""
    with tempfile.TemporaryDirectory(prefix="lyra-rotation-") as tmp:
        folder = Path(tmp) / "vault"
        folder.mkdir(mode=0o700)
        path = folder / "scratch.vault"
        old, new, value = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_hex(16)
        try:
            vault = vault_module.Vault.create(path, old)
            vault.set("scratch/probe", value)
            vault.rotate(new)
            reopened = vault_module.Vault.open(path, new)
            if reopened.get("scratch/probe") != value:
                return False, "after rotation the scratch secret read back differently"
        except LyraError as exc:
            return False, f"rotation failed: {exc}"
        try:
            vault_module.Vault.open(path, old)
        except LyraError:
            return True, "scratch vault rotated: new password opens it, old password refused"
        return False, "after rotation the OLD password still opens the vault"


def check_vault(settings: Settings, vault_module: Any) -> tuple[bool, bool | None, str, Any]:
    """(present, ok, detail, vault) for the configured vault."""
    where = getattr(vault_module, "vault_path", lambda s: Path(s.vault_path))(settings)
    if not Path(where).exists():
        return False, None, "", None
    try:
        vault = vault_module.open_vault(settings)
    except LyraError as exc:
        return True, False, str(exc), None
    if vault is None:
        return False, None, "", None
    try:
        result = vault.verify()
    except LyraError as exc:
        return True, False, str(exc), vault
    if result is False:
        return True, False, "verify() reported a damaged vault; restore it from backup", vault
    return True, True, f"{len(vault.names())} secrets, all authenticate", vault


def file_modes(settings: Settings, extra: Sequence[tuple[Path, int]] = ()) -> list[FileMode]:
    """The modes of the files that hold secrets (vault, its folder, the signing key)."""
    targets: list[tuple[Path, int]] = [
        (Path(settings.vault_path), 0o600),
        (Path(settings.vault_path).parent, 0o700),
        *extra,
    ]
    out: list[FileMode] = []
    for path, max_mode in targets:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = None
        out.append(FileMode(str(path), mode, max_mode))
    return out


def probe_monitoring(settings: Settings, timeout_s: float = 2.0) -> tuple[str, bool, str]:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a listening wildcard is probed on loopback
        host = "127.0.0.1"
    url = f"http://{host}:{settings.server.port}/healthz"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return url, False, type(exc).__name__
    if response.status_code != 200:
        return url, False, f"HTTP {response.status_code}"
    return url, True, ""


def headroom(path: Path) -> tuple[float | None, float | None, float | None]:
    """(load per CPU, free memory %, free disk GB under `path`)."""
    try:
        load: float | None = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = None
    memory: float | None = None
    try:
        info = dict(
            (line.split(":")[0], int(line.split()[1])) for line in Path("/proc/meminfo").read_text().splitlines()
            if line.split()[1:2] and line.split()[1].isdigit()
        )  # fmt: skip
        memory = 100.0 * info["MemAvailable"] / info["MemTotal"]
    except (OSError, KeyError, ZeroDivisionError):
        memory = None
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    disk = shutil.disk_usage(probe).free / 1e9
    return load, memory, disk


def collect_phase1(
    settings: Settings,
    council: Any,
    *,
    now: float,
    vault_module: Any = None,
    extra_modes: list[tuple[Path, int]] | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> Phase1Facts:
    """Gather Phase-1 facts. `council` has `decide(CouncilContext) -> ConsensusResult`."""
    facts = Phase1Facts()
    step("asking the council (health)")
    try:
        result = council.decide(CouncilContext(phase=1, question="health", now=now, note="phase-1 health ping"))
        facts.council_response_rate = float(result.response_rate)
        facts.council_degraded = bool(getattr(result, "degraded", False))
    except Exception as exc:  # an unreachable council is a failed check, not a crash
        facts.council_error = f"{type(exc).__name__}: {exc}"[:200]

    step("checking the council's models against OpenRouter's catalogue")
    facts.council_models_gone, facts.council_models_note = council_models(council)

    module = vault_module if vault_module is not None else _vault_module()
    step("rotating a scratch vault")
    facts.rotation_ok, facts.rotation_detail = exercise_rotation(module)
    step("verifying the vault")
    facts.vault_present, facts.vault_ok, facts.vault_detail, _ = check_vault(settings, module)

    step("checking file modes")
    facts.file_modes = file_modes(settings, extra_modes or [])
    step("probing the monitoring server")
    facts.monitoring_url, facts.monitoring_ok, facts.monitoring_detail = probe_monitoring(settings)
    step("measuring headroom")
    facts.load_per_cpu, facts.free_memory_pct, facts.free_disk_gb = headroom(Path(settings.data_dir))
    return facts
