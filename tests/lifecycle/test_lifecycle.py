"""A service's whole life outside this checkout, as a team lives it.

appkit is released (a tag on the team's git server, wheels for the team's index); services are
rendered from the repository's URL; each is installed in fresh venvs that have never seen
appkit, with pip and with uv; the team edits and commits; appkit releases a new minor version;
`appkit-scaffold upgrade` brings the service to it and a reinstall brings the new runtime.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import copier
import pytest
import yaml

from scaffold.cli import run
from tests.conftest import REDIS_URL
from tests.helpers import git, git_init, git_save, passed, runtime_version
from tests.lifecycle.release import (
    V1,
    V2,
    V2_HEALTHZ_DOC,
    V2_VERSION,
    FreshVenv,
    build_wheels,
    install_commands,
    release_v1,
    release_v2,
)

TEAM_LINE = "# The orders team: on call in #orders-oncall.\n"


def render(url: str, dest: Path, **data: str) -> Path:
    """`copier copy --trust --defaults URL DEST`, without --vcs-ref: copier takes the latest tag."""
    copier.run_copy(url, dest, data=data, defaults=True, unsafe=True, quiet=True)
    git_init(dest, "service from appkit")
    return dest


def answers(service: Path) -> dict[str, object]:
    return yaml.safe_load((service / ".copier-answers.yml").read_text())


def assert_ok(done: object) -> None:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"  # type: ignore[attr-defined]


def service_tests_pass(venv: FreshVenv, service: Path, database_url: str) -> int:
    """Run the service's own tests on the real Redis and PostgreSQL; how many passed."""
    environ = venv.environ(APPKIT_REDIS_URL=REDIS_URL, APPKIT_DATABASE_URL=database_url)
    return passed(
        venv.run("python", "-m", "pytest", "-p", "no:cacheprovider", cwd=service, env=environ)
    )


def fresh_install(path: Path, service: Path, *commands: str) -> FreshVenv:
    """A new venv at `path` in which each shell command, run in `service`, succeeded."""
    venv = FreshVenv(path)
    for command in commands:
        assert_ok(venv.shell(command, cwd=service))
    return venv


def checked(venv: FreshVenv, service: Path) -> None:
    done = venv.run("appkit-scaffold", "check", cwd=service)
    assert_ok(done)
    assert done.stdout.endswith("check: no problems\n")


@pytest.mark.redis
@pytest.mark.postgres
def test_a_service_installs_anywhere_and_upgrades_to_the_next_tag(
    tmp_path: Path, postgres_database: str
) -> None:
    # appkit v1 on the team's git server; its wheels, for an index, from `python -m build`.
    bare = release_v1(tmp_path)
    url = f"file://{bare}"
    index_v1 = tmp_path / "index-v1"
    # Two services from the URL: the runtime from the git tag (the default), and from an index.
    orders = render(url, tmp_path / "orders", project_name="orders")
    billing = render(url, tmp_path / "billing", project_name="billing", runtime_source="index")
    assert answers(orders)["_commit"] == V1
    assert answers(orders)["_src_path"] == url
    pip_install, uv_install = install_commands(orders)
    assert install_commands(billing) == (pip_install, uv_install)

    def install_from_index() -> tuple[FreshVenv, CompletedProcess[str]]:
        build_wheels(tmp_path / "appkit-v1", index_v1)
        venv = FreshVenv(tmp_path / "venv-index")
        return venv, venv.shell(pip_install, cwd=billing, PIP_FIND_LINKS=str(index_v1))

    # The three fresh venvs share nothing, so they install at once (each is mostly waiting on
    # one single-threaded pip, uv or build process); what each installed is checked below.
    with ThreadPoolExecutor(3) as pool:
        installing_with_pip = pool.submit(fresh_install, tmp_path / "venv-pip", orders, pip_install)
        installing_with_uv = pool.submit(
            fresh_install, tmp_path / "venv-uv", orders, "pip install -q uv", uv_install
        )
        installing_from_index = pool.submit(install_from_index)

    # A fresh venv, nothing but pip: the README's command installs the runtime from the tag.
    with_pip = installing_with_pip.result()
    version, direct_url = with_pip.runtime()
    assert version == runtime_version()
    assert direct_url is not None
    assert direct_url["url"] == f"file://localhost{bare}"
    assert direct_url["vcs_info"]["requested_revision"] == V1  # type: ignore[index]
    before = service_tests_pass(with_pip, orders, postgres_database)
    checked(with_pip, orders)

    # Another fresh venv, with uv from PyPI: the same.
    with_uv = installing_with_uv.result()
    version, direct_url = with_uv.runtime()
    assert version == runtime_version()
    assert direct_url is not None
    assert direct_url["vcs_info"]["requested_revision"] == V1  # type: ignore[index]
    assert service_tests_pass(with_uv, orders, postgres_database) == before
    checked(with_uv, orders)

    # runtime_source=index: the runtime comes from the folder of wheels, not from git.
    from_index, installed = installing_from_index.result()
    assert_ok(installed)
    assert f"{index_v1}/appkit_runtime-{runtime_version()}-py3-none-any.whl" in installed.stdout
    assert from_index.runtime() == (runtime_version(), None)
    service_tests_pass(from_index, billing, postgres_database)
    checked(from_index, billing)

    # The team edits main.py, adds an endpoint and commits.
    main = orders / "src" / "orders" / "main.py"
    main.write_text(main.read_text() + TEAM_LINE)
    assert_ok(with_pip.run("appkit-scaffold", "add-endpoint", "shipments", cwd=orders))
    git_save(orders, "team: on-call note and a shipments endpoint")

    # appkit v2: a minor version up, a template file and a runtime function changed; tagged.
    checkout_v2 = release_v2(bare, tmp_path)
    index_v2 = tmp_path / "index-v2"
    # Its wheels are needed last: built while the git service upgrades.
    builder = ThreadPoolExecutor(1)
    building_v2 = builder.submit(build_wheels, checkout_v2, index_v2)

    upgraded = with_pip.run("appkit-scaffold", "upgrade", cwd=orders)
    assert_ok(upgraded)
    assert answers(orders)["_commit"] == V2
    pyproject = (orders / "pyproject.toml").read_text()
    # The dependency itself, the otel extra and the dev extra.
    assert pyproject.count(f'@ git+file://localhost{bare}@{V2}"') == 3
    assert V1 not in pyproject
    git_save(orders, f"upgrade to appkit {V2}")

    # Reinstalled in the same venv: the new runtime, the team's work kept, the tests pass.
    assert_ok(with_pip.shell(pip_install, cwd=orders))
    version, direct_url = with_pip.runtime()
    assert version == V2_VERSION
    assert direct_url["vcs_info"]["requested_revision"] == V2  # type: ignore[index]
    healthz_doc = with_pip.run(
        "python",
        "-c",
        "from appkit_runtime.fastapi.health import healthz; print(healthz.__doc__)",
        cwd=orders,
    )
    assert healthz_doc.stdout.startswith(V2_HEALTHZ_DOC)
    assert main.read_text().endswith(TEAM_LINE)
    assert (orders / "src" / "orders" / "routers" / "shipments.py").is_file()
    assert "## Deploy it (v2)" in (orders / "README.md").read_text()
    assert service_tests_pass(with_pip, orders, postgres_database) > before
    checked(with_pip, orders)
    assert_ok(with_uv.shell(uv_install, cwd=orders))
    assert with_uv.runtime()[0] == V2_VERSION

    # The index service upgrades to the new release line, installed from the new wheels.
    building_v2.result()
    builder.shutdown()
    assert_ok(from_index.run("appkit-scaffold", "upgrade", cwd=billing))
    assert f'"appkit-runtime~={V2_VERSION}"' in (billing / "pyproject.toml").read_text()
    assert_ok(from_index.shell(pip_install, cwd=billing, PIP_FIND_LINKS=str(index_v2)))
    assert from_index.runtime() == (V2_VERSION, None)
    service_tests_pass(from_index, billing, postgres_database)


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` with the SHA-256 of its bytes (git's own files included)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_upgrade_to_a_tag_that_does_not_exist_exits_2_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = release_v1(tmp_path)
    service = render(f"file://{bare}", tmp_path / "orders")
    before = tree(service)
    monkeypatch.chdir(service)
    capsys.readouterr()

    code = run(["upgrade", "--to", "v99.0.0"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "v99.0.0" in err
    assert tree(service) == before


def test_upgrade_from_an_unreachable_template_exits_2_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = release_v1(tmp_path)
    service = render(f"file://{bare}", tmp_path / "orders")
    release_v2(bare, tmp_path)
    # The team's git server is gone.
    bare.rename(tmp_path / "moved.git")
    before = tree(service)
    monkeypatch.chdir(service)
    capsys.readouterr()

    code = run(["upgrade"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("upgrade failed, nothing changed: ")
    assert git("status", "--porcelain", cwd=service) == ""
    assert tree(service) == before


def test_upgrade_refuses_a_relative_template_path_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Copied as the quick start once did, from a path relative to where copier ran.
    release_v1(tmp_path)
    monkeypatch.chdir(tmp_path)
    service = render("appkit-v1", tmp_path / "orders")
    assert answers(service)["_src_path"] == "appkit-v1"
    before = tree(service)
    monkeypatch.chdir(service)
    capsys.readouterr()

    code = run(["upgrade", "--dry-run"])

    assert code == 2
    assert capsys.readouterr().err == (
        "refusing to upgrade: .copier-answers.yml records _src_path 'appkit-v1', a relative "
        "path copier would resolve from the service's folder; set it to appkit's absolute path "
        "or URL, commit, and retry\n"
    )
    assert tree(service) == before
