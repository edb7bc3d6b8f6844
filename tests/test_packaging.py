"""The two install routes (pip via pyproject.toml, conda via environment.yml) must agree,
and CI must run exactly the README's test command."""
import re
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return dict(r.split("==") for r in reqs)


def _environment_pins():
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s*-\s*([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_every_dependency_is_pinned():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in meta["dependencies"] + meta["optional-dependencies"]["test"]:
        assert "==" in req, f"{req} is not pinned with =="


def test_environment_yml_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert commands, "README has no shell code block"
    first_block = [line.split("#")[0].strip() for line in commands[0].splitlines()]
    first_block = [line for line in first_block if line]
    assert first_block[:2] == ["make course", "make test"], first_block
    assert [line for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))] == ["make test"]


def test_notebooks_are_stored_clean():
    """No outputs or execution counts in git: diffs stay reviewable."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} cell {i} has stored outputs"
                assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def test_notebooks_are_numbered_and_start_the_run():
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert paths and paths[0].name == "00_setup_and_data.ipynb"
    for path in paths:
        assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", path.name), path.name
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert f'start_notebook("{path.stem}")' in code, f"{path.name} must call start_notebook"
        assert "run.finish()" in code, f"{path.name} must record its metrics"
