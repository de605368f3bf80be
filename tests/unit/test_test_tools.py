"""`make test` installs the Debian packages its tests drive when they are missing
(scripts/test-tools.sh), run here with chromium and promtool hidden from PATH and apt-get,
sudo and id stood in for: what is asked of apt, as root and through sudo, and the one line
when neither can install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-tools.sh"

APT_GET = f"""#!{sys.executable}
import os, sys
from pathlib import Path
with open(os.environ["APT_LOG"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
if "install" in sys.argv and not os.environ.get("BROKEN_PACKAGE"):
    for tool in ("chromium", "promtool"):
        path = Path(os.environ["INSTALLED"]) / tool
        path.write_text("#!/bin/sh\\n")
        path.chmod(0o755)
"""
ID = f"""#!{sys.executable}
import os
print(os.environ["FAKE_UID"])
"""
SUDO = f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
if args[:1] == ["-n"]:
    args = args[1:]
if not os.environ.get("SUDO_ALLOWED"):
    sys.exit(1)
if args == ["true"]:
    sys.exit(0)
with open(os.environ["APT_LOG"], "a") as fh:
    fh.write("sudo ")
os.execv(os.path.join(os.environ["SHIMS"], args[0]), args)
"""


def tool(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


Ran = tuple[subprocess.CompletedProcess[str], list[str]]  # the script's run, and what apt was asked


def run(tmp: Path, uid: int = 0, sudo: bool | None = None, **env: str) -> Ran:
    shims, installed = tmp / "shims", tmp / "installed"
    for folder in (shims, installed):
        folder.mkdir(exist_ok=True)
    tool(shims / "apt-get", APT_GET)
    tool(shims / "id", ID)
    if sudo is not None:
        tool(shims / "sudo", SUDO)
    log = tmp / "apt.log"
    environ = {"PATH": f"{shims}:{installed}", "APT_LOG": str(log), "INSTALLED": str(installed),
               "SHIMS": str(shims), "FAKE_UID": str(uid), "TMPDIR": str(tmp), **env}
    if sudo:
        environ["SUDO_ALLOWED"] = "1"
    done = subprocess.run(["/bin/sh", str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=30)
    return done, log.read_text().splitlines() if log.exists() else []


def test_as_root_the_missing_packages_are_installed_once_then_nothing_is_asked(tmp_path: Path) -> None:
    done, apt = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert apt == ["update -qq", "install -y -qq chromium prometheus"]
    assert (tmp_path / "installed" / "chromium").exists()
    again, apt = run(tmp_path)
    assert again.returncode == 0 and again.stderr == ""
    assert apt == ["update -qq", "install -y -qq chromium prometheus"]  # nothing more asked


def test_only_what_is_missing_is_installed(tmp_path: Path) -> None:
    (tmp_path / "installed").mkdir()
    tool(tmp_path / "installed" / "chromium", "#!/bin/sh\n")
    done, apt = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert apt[-1] == "install -y -qq prometheus"


def test_without_root_it_goes_through_sudo(tmp_path: Path) -> None:
    done, apt = run(tmp_path, uid=1000, sudo=True)
    assert done.returncode == 0, done.stderr
    assert apt == ["sudo update -qq", "sudo install -y -qq chromium prometheus"]


@pytest.mark.parametrize("sudo", [None, False], ids=["no sudo", "sudo wants a password"])
def test_without_root_or_sudo_one_line_says_what_to_run_and_it_fails(tmp_path: Path, sudo: bool | None) -> None:
    done, apt = run(tmp_path, uid=1000, sudo=sudo)
    assert done.returncode == 1
    assert apt == []
    assert done.stderr.splitlines() == [
        "error: the tests drive Debian's chromium prometheus; install it as root: "
        "apt-get install -y chromium prometheus"]


def test_a_package_that_leaves_its_command_missing_fails_loudly(tmp_path: Path) -> None:
    done, _ = run(tmp_path, BROKEN_PACKAGE="1")
    assert done.returncode == 1
    assert "chromium is still missing after apt-get install" in done.stderr


def test_make_test_runs_it_before_any_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert os.access(SCRIPT, os.X_OK)
    test_rule = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "test-tools" in test_rule
    assert "scripts/test-tools.sh" in makefile
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-2:] == ["make test", "make lint"]
