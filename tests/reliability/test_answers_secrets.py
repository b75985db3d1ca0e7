"""`.copier-answers.yml` holds no key material: not after `copier copy` with a custom dev key,
not after an upgrade to the next template version."""

from __future__ import annotations

from pathlib import Path

from scaffold.upgrade import upgrade
from tests.helpers import build_template_repo, git_init, render_service
from tests.reliability.material import leaks, new_key
from tests.upgrade.conftest import V1, V2, release_v2

DEFAULT_DEV_KEY = "dev-vault-key"


def test_the_answers_file_holds_no_key_after_copy_and_after_upgrade(tmp_path: Path) -> None:
    appkit = build_template_repo(tmp_path / "appkit", tag=V1)
    key = new_key("dev")
    service = render_service(appkit, tmp_path / "vault", package_name="vault", dev_api_key=key)
    answers = service / ".copier-answers.yml"

    # The custom key reached the service's development settings, and only them.
    assert key in (service / ".env.example").read_text()
    assert leaks([answers.read_text()]) == []
    assert DEFAULT_DEV_KEY not in answers.read_text()
    assert "dev_api_key" not in answers.read_text()

    git_init(service, "service from template v1")
    release_v2(appkit)
    assert upgrade(service, to=None, dry_run=False) == 0

    text = answers.read_text()
    assert f"_commit: {V2}" in text
    assert leaks([text]) == []
    assert DEFAULT_DEV_KEY not in text
    assert "dev_api_key" not in text
    # The upgrade kept the team's key where it was.
    assert key in (service / ".env.example").read_text()
