"""`lyra-governor install-scripts`: put Lyra's Hummingbot scripts and their configs in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from lyra_governor.cli.common import console
from lyra_governor.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("install-scripts")(install_scripts_cmd)


def _source_dirs() -> tuple[Path, Path]:
    """The repository's scripts/ and conf/scripts/ (Lyra is installed from a clone, editable)."""
    import lyra_strategies

    root = Path(lyra_strategies.__file__).resolve().parents[1]
    scripts, confs = root / "scripts", root / "conf" / "scripts"
    if not scripts.is_dir() or not confs.is_dir():
        raise ConfigError(
            f"cannot find Lyra's scripts/ and conf/scripts/ next to {root}; install Lyra from a "
            "clone of its repository (pip install -e .)"
        )
    return scripts, confs


def install_scripts_cmd(
    hummingbot_dir: Path = typer.Option(
        ..., "--hummingbot-dir", help="Hummingbot's folder (holds scripts/ and conf/)."
    ),
    link: bool = typer.Option(False, "--link", help="Symlink instead of copying (updates follow the clone)."),
    force: bool = typer.Option(False, "--force", help="Replace files that differ from Lyra's."),
) -> None:
    """Copy (or link) scripts/lyra_*.py into DIR/scripts and conf/scripts/*.yml into DIR/conf/scripts."""
    if not hummingbot_dir.is_dir():
        raise ConfigError(
            f"{hummingbot_dir} is not a folder; pass Hummingbot's installation folder "
            "(the one with scripts/ and conf/ in it)"
        )
    scripts, confs = _source_dirs()
    plan = [(p, hummingbot_dir / "scripts" / p.name) for p in sorted(scripts.glob("lyra_*.py"))]
    plan += [(p, hummingbot_dir / "conf" / "scripts" / p.name) for p in sorted(confs.glob("conf_lyra_*.yml"))]
    done = {"copied": 0, "linked": 0, "unchanged": 0, "kept": 0}
    for source, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() and target.resolve() == source.resolve():
            done["unchanged"] += 1
            continue
        if target.exists() and not target.is_symlink() and target.read_bytes() == source.read_bytes() and not link:
            done["unchanged"] += 1
            continue
        if target.exists() or target.is_symlink():
            if not force:
                console.print(f"[yellow]kept[/] {target} (it differs from Lyra's; --force replaces it)")
                done["kept"] += 1
                continue
            target.unlink()
        if link:
            target.symlink_to(source.resolve())
            done["linked"] += 1
        else:
            shutil.copy2(source, target)
            done["copied"] += 1
        console.print(f"{'linked' if link else 'copied'} {source.name} -> {target}")
    console.print(
        f"{done['copied']} copied, {done['linked']} linked, {done['unchanged']} already in place, {done['kept']} kept. "
        "Lyra itself must be importable by Hummingbot's Python: `pip install -e <lyra clone>` in its environment. "
        "Then in Hummingbot: start --v2 conf_lyra_market_making.yml (each config names its script in script_file_name)"
    )
