"""Release hygiene: the sdist and the wheel carry the package's script and type information,
pass ``twine check``, and the changelog names the version being built. (``make dist`` also
installs the wheel alone in a clean virtual environment: ``tests/smoke_installed.py``.)"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE_FILES = [
    "flask_oidc_refresh/__init__.py",
    "flask_oidc_refresh/py.typed",
    "flask_oidc_refresh/static/oidc-refresh.js",
    "flask_oidc_refresh/static/oidc-refresh.mjs",
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def test_the_wheel_carries_the_script_and_the_type_information(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    assert wheel.name == f"flask_oidc_refresh-{version()}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for name in PACKAGE_FILES:
        assert name in names
    assert not any(name.startswith(("tests/", "docs/")) for name in names)


def test_the_sdist_carries_the_package_docs_and_tests_but_no_node_modules(dist: Path) -> None:
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for name in [*PACKAGE_FILES, "docs/index.rst", "tests/conftest.py", "Makefile"]:
        assert name in names
    assert not any("node_modules" in name or "artifacts" in name for name in names)


def test_twine_check_passes(dist: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_changelog_names_the_version_being_built() -> None:
    changelog = (ROOT / "docs" / "changelog.rst").read_text().splitlines()
    first_heading = next(line for line in changelog[2:] if line and line[0].isdigit())
    assert first_heading.split()[0] == version()
