"""The package as a user gets it: a wheel built from a clean copy of the checkout, installed (not
editable) into a fresh virtualenv, driven from outside the source tree.

What it guards: pyproject.toml lists the packages by name, so a forgotten subpackage or template
would only be noticed by someone installing the wheel; and `pip install codex-orch-cli` is not how
anyone gets codex-orch (it is not published), so README's way, a wheel from a clone, must work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, write_plan

ROOT = Path(__file__).resolve().parents[1]


def source_files() -> list[str]:
    """The checkout as a clone would have it: tracked and untracked files, minus the git-ignored ones."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build --wheel` on a copy of the checkout, offline (--no-isolation: the build backend
    comes from the dev venv), so that the build writes nothing into the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for name in source_files():
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(base / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"{built.stdout[-3000:]}\n{built.stderr[-3000:]}\n(is the dev venv up to date?)"
    wheels = list((base / "dist").glob("codex_orch_cli-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def expected_wheel_files() -> set[str]:
    """Every file of the package's source folders, at the path pyproject.toml maps it to."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"codex_orch": "codex_orch", **tool.get("package-dir", {})}  # package -> source folder
    expected = set()
    for name in source_files():
        for package, folder in folders.items():
            if name.startswith(f"{folder}/"):
                expected.add(package.replace(".", "/") + name[len(folder) :])
    return expected


def test_the_wheel_holds_every_module_and_template_of_the_source_tree(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if ".dist-info/" not in n}
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")))
    expected = expected_wheel_files()
    assert "codex_orch/templates/orchestrator.yaml" in expected and "codex_orch/cli/main.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (add the package to pyproject.toml's list?): {missing}"
    assert sorted(names - expected) == []
    for required in ("orchestrator.yaml", "schemas/task_result.schema.json", "prompts/implementer.md.j2"):
        assert f"codex_orch/templates/{required}" in names
    for page in ("index.html", "run.html", "task.html", "style.css", "common.js", "dag.js"):
        assert f"codex_orch/web/static/{page}" in names  # the dashboard's pages are package data
    assert "codex-orch = codex_orch.__main__:main" in entry_points.decode()


def test_the_wheel_declares_the_dependencies_of_pyproject(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    declared = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    from packaging.requirements import Requirement

    unconditional = {str(Requirement(d)) for d in declared if "extra ==" not in d}
    assert unconditional == {str(Requirement(d)) for d in project["dependencies"]}


def test_the_installed_wheel_inits_and_runs_a_plan_outside_the_checkout(
    wheel: Path, repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    venv = tmp_path / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # the dev venv's pip installs the wheel itself into the fresh one; its dependencies are the dev
    # venv's, seen through a path file (resolving them from the index again took ~20 s of the suite; the
    # wheel's declared dependencies are checked against pyproject.toml below, and `pip install -e .`
    # resolves the same list in every setup)
    installed = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")),
            *("install", "-q", "--no-deps", str(wheel)),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    dev_site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_relative_to(sys.prefix))
    (fresh_site / "zz_dev_dependencies.pth").write_text(f"{dev_site}\n")  # after the wheel's own files
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "codex-orch"), *args],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import codex_orch; print(codex_orch.__file__)"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv / "lib"), where
    assert not Path(where).is_relative_to(ROOT), where

    # the fake_codex fixture configured the repo already; init must keep that and add what is missing
    config = repo.path / ".orchestrator" / "orchestrator.yaml"
    configured = config.read_text()
    initialised = cli("init")
    assert initialised.returncode == 0, initialised.stderr
    assert config.read_text() == configured
    scaffold = repo.path / ".orchestrator"
    for folder in ("schemas", "prompts"):
        shipped = sorted(p.name for p in (ROOT / "templates" / folder).iterdir() if p.is_file())
        assert sorted(p.name for p in (scaffold / folder).iterdir()) == shipped
        for name in shipped:
            assert (scaffold / folder / name).read_bytes() == (ROOT / "templates" / folder / name).read_bytes()

    fake_codex.script(
        {
            "rules": [
                {
                    "match": "hello.txt",
                    "turns": [[{"write": "hello.txt", "content": "hi\n"}, {"answer": answer("hi", ["hello.txt"])}]],
                }
            ]
        }
    )
    task = {"role": "implementer", "prompt": "Create hello.txt", "acceptance": "it exists", "blocked_by": []}
    plan = write_plan(tmp_path / "plan.json", [task])
    ran = cli("run", "--plan-file", str(plan), "--run-id", "from-wheel", "--no-progress")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    state = json.loads((scaffold / "runs" / "from-wheel" / "state.json").read_text())
    assert state["status"] == "succeeded" and state["tasks"]["T0001"]["status"] == "succeeded"
    assert repo.git("show", f"{state['branch']}:hello.txt") == "hi"
