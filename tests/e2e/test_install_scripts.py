"""`lyra-governor install-scripts` into a Hummingbot folder, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lyra-governor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False)


def test_install_copy_then_link_and_keep_local_edits(tmp_path: Path) -> None:
    hb = tmp_path / "hummingbot"
    (hb / "scripts").mkdir(parents=True)
    done = run_cli("install-scripts", "--hummingbot-dir", str(hb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    repo = Path(__file__).resolve().parents[2]
    scripts = sorted(p.name for p in (repo / "scripts").glob("lyra_*.py"))
    confs = sorted(p.name for p in (repo / "conf" / "scripts").glob("conf_lyra_*.yml"))
    names = sorted(p.name for p in (hb / "scripts").iterdir())
    assert names == scripts and {"lyra_arbitrage.py", "lyra_market_making.py", "lyra_rebalancer.py"} <= set(names)
    assert sorted(p.name for p in (hb / "conf" / "scripts").iterdir()) == confs
    assert f"{len(scripts) + len(confs)} copied" in " ".join(done.stdout.split())
    again = run_cli("install-scripts", "--hummingbot-dir", str(hb), cwd=tmp_path)
    assert f"{len(scripts) + len(confs)} already in place" in " ".join(again.stdout.split())
    (hb / "scripts" / "lyra_arbitrage.py").write_text("# my edit\n")
    kept = run_cli("install-scripts", "--hummingbot-dir", str(hb), "--link", cwd=tmp_path)
    assert "kept" in kept.stdout and (hb / "scripts" / "lyra_arbitrage.py").read_text() == "# my edit\n"
    forced = run_cli("install-scripts", "--hummingbot-dir", str(hb), "--link", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and (hb / "scripts" / "lyra_arbitrage.py").is_symlink()
    missing = run_cli("install-scripts", "--hummingbot-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "not a folder" in missing.stderr and "Traceback" not in missing.stderr
