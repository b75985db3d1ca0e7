"""new: a service rendered through Copier's API, from a checkout and from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scaffold import new as new_command
from tests.helpers import ROOT, ServiceVenv, git_init, runtime_version
from tests.scaffold.conftest import Result

Scaffold = Callable[..., Result]


@pytest.fixture
def from_template_repo(monkeypatch: pytest.MonkeyPatch, template_repo: Path) -> Path:
    """`new` renders the session's clean template repo (a git checkout of the working tree)."""
    monkeypatch.setattr(new_command, "template_source", lambda: template_repo)
    return template_repo


@pytest.mark.usefixtures("from_template_repo")
def test_new_renders_a_service_named_after_its_folder(scaffold: Scaffold, tmp_path: Path) -> None:
    dest = tmp_path / "billing-api"

    result = scaffold("new", dest, "--data", "database=sqlite", "--data", "include_example=false")

    assert result.code == 0, result.err
    assert result.err == ""  # a git checkout records its commit: no note that updates fail
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "billing-api"
    assert answers["package_name"] == "billing_api"
    assert answers["database"] == "sqlite"
    assert answers["include_example"] is False
    # A checkout renders its HEAD, which Copier records.
    assert answers["_commit"].startswith("v")
    assert (dest / "src" / "billing_api" / "routers" / "__init__.py").is_file()
    assert not (dest / "src" / "billing_api" / "routers" / "items.py").exists()


@pytest.mark.usefixtures("from_template_repo")
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("package_name=Bad-Name", "Validation error for question 'package_name': package_name"),
        ("default_rate_limit=lots", "default_rate_limit must be N/S"),
        ("package_name=fastapi", "package_name 'fastapi' is the dependency fastapi"),
        ("package_name=test", "package_name 'test' is a standard-library module"),
        ("no-equals-sign", "bad --data 'no-equals-sign': use KEY=VALUE"),
    ],
)
def test_bad_answers_exit_2_with_the_validator_line_and_leave_nothing(
    scaffold: Scaffold, tmp_path: Path, data: str, message: str
) -> None:
    dest = tmp_path / "svc"

    result = scaffold("new", dest, "--data", data)

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert not dest.exists()


@pytest.mark.usefixtures("from_template_repo")
def test_a_folder_named_with_backslashes_and_quotes_renders_an_importable_package(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    dest = tmp_path / 'C:\\x "quoted"'

    result = scaffold("new", dest, "--data", "include_example=false")

    assert result.code == 0, result.err
    init = dest / "src" / "c_x_quoted" / "__init__.py"
    namespace: dict[str, object] = {}
    exec(compile(init.read_text(), str(init), "exec"), namespace)
    assert namespace["DESCRIPTION"] == 'C:\\x "quoted": an API service built on appkit'


def test_a_folder_in_the_way_exits_1(scaffold: Scaffold, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")

    result = scaffold("new", tmp_path)

    assert result.code == 1
    assert result.err == f"appkit-scaffold: {tmp_path} exists and is not an empty folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_folder_name_too_long_for_the_file_system_exits_2_in_one_line(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    result = scaffold("new", tmp_path / ("z" * 300))

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "bad DEST" in result.err and "File name too long" in result.err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("from_template_repo")
def test_the_next_steps_line_quotes_a_folder_for_the_shell(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    dest = tmp_path / "team space" / "C:\\x"

    result = scaffold("new", dest, "--data", "include_example=false")

    assert result.code == 0, result.err
    command = result.out.strip().split(": ", 1)[1]
    run = subprocess.run(["sh", "-c", command.split(" && ")[0] + " && pwd"], capture_output=True)
    assert run.stdout.decode().strip() == str(dest)


def layered_venv(path: Path) -> Path:
    """A venv without pip that sees this environment's packages after its own; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True)
    python = path / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    layer = f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    (Path(own.stdout.strip()) / "appkit-layers.pth").write_text(layer)
    return python


def test_new_and_add_endpoint_work_from_an_installed_wheel(
    service_venv: ServiceVenv, tmp_path: Path
) -> None:
    # The wheel as released: built from this checkout (the session venv has the backend).
    wheels = tmp_path / "wheels"
    built = service_venv.run(
        "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT, cwd=tmp_path
    )
    assert built.returncode == 0, built.stdout
    python = layered_venv(tmp_path / "venv")
    install = [python, "-m", "pip", "install", "-q", "--no-deps", *wheels.glob("*.whl")]
    subprocess.run(install, check=True, capture_output=True)
    script = python.parent / "appkit-scaffold"
    where = subprocess.run(
        [python, "-c", "import scaffold.project as p; print(p.template_source())"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip().endswith("site-packages/scaffold/_template")

    dest = tmp_path / "orders"
    made = subprocess.run([script, "new", dest], cwd=tmp_path, capture_output=True, text=True)
    added = subprocess.run(
        [script, "add-endpoint", "ping", "--public"], cwd=dest, capture_output=True, text=True
    )

    assert made.returncode == 0, made.stderr
    assert "copier cannot update the service; for one it can, pass --template" in made.stderr
    assert added.returncode == 0, added.stderr
    assert (dest / "src" / "orders" / "routers" / "ping.py").is_file()
    pyproject = (dest / "pyproject.toml").read_text()
    assert f'"appkit-runtime~={runtime_version()}"' in pyproject
    git_init(dest)
    checked = subprocess.run([script, "check"], cwd=dest, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
