"""Configuration: a bad file names the file, the key path and the problem, and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config.opsgate import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "opsgate.example.yaml"
EXAMPLE_ENV = {
    name: "x"
    for name in (
        "OT_TEST_CLIENT_SECRET", "CANTO_APP_SECRET", "ICONIK_APP_ID", "ICONIK_AUTH_TOKEN",
        "CONFLUENCE_API_TOKEN", "OT_PROD_CLIENT_SECRET",
    )
}  # fmt: skip

MINIMAL = """
environments:
  prod: {}
policies:
  - name: a
    action: promotion
    environment: prod
    approvers: {groups: [leads]}
  - name: b
    action: rotation
    environment: prod
    approvers: {groups: [leads]}
  - name: c
    action: release
    environment: prod
    approvers: {groups: [leads]}
    min_approvals: 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsgate.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env or {})
    return caught.value.problems


def test_example_config_is_valid_when_its_variables_are_set():
    config = load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert set(config.environments) == {"test", "prod"}
    opentext = config.environments["test"].opentext
    assert opentext is not None and opentext.client_secret is not None
    assert opentext.client_secret.get_secret_value() == "x"


def test_allow_unset_lets_the_example_validate_without_its_secrets(tmp_path):
    """`make serve` checks the example file with --allow-unset on a machine without the secrets."""
    config = load_config(EXAMPLE, env={}, allow_unset=True)
    opentext = config.environments["test"].opentext
    assert opentext is not None and opentext.client_secret is not None
    assert opentext.client_secret.get_secret_value() == "<OT_TEST_CLIENT_SECRET unset>"
    command = [sys.executable, "-m", "bot.cli", "--config", str(EXAMPLE), "--allow-unset", "check"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    trial = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert trial.returncode == 0, trial.stderr
    assert "is valid" in trial.stdout
    strict = subprocess.run([c for c in command if c != "--allow-unset"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert strict.returncode == 2
    assert (
        "environments.test.opentext.client_secret: environment variable OT_TEST_CLIENT_SECRET is not set"
        in (strict.stderr)
    )


def test_min_approvals_below_one_names_the_key_path(tmp_path):
    assert problems(tmp_path, MINIMAL) == ["policies[2].min_approvals: must be >= 1"]


def test_bad_file_exits_2_and_names_file_key_and_problem(tmp_path):
    path = write(tmp_path, MINIMAL)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(path), "check"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: policies[2].min_approvals: must be >= 1"
    assert "Traceback" not in result.stderr


def test_literal_secret_in_the_file_is_refused(tmp_path):
    text = "environments:\n  prod:\n    canto: {app_id: a, app_secret: hunter2}\n"
    assert problems(tmp_path, text) == [
        "environments.prod.canto.app_secret: secret values must not be written in the file; "
        "reference an environment variable instead, e.g. ${MY_SECRET}"
    ]


def test_references_expand_from_the_environment_with_defaults(tmp_path):
    text = "environments:\n  prod:\n    canto: {base_url: '${CANTO_URL:-https://x.canto.com}', app_id: a, app_secret: '${S}'}\n"
    canto = load_config(write(tmp_path, text), env={"S": "from-env"}).environments["prod"].canto
    assert canto is not None and canto.base_url == "https://x.canto.com"
    assert canto.app_secret.get_secret_value() == "from-env"


def test_unset_variable_is_named(tmp_path):
    text = "environments:\n  prod:\n    iconik: {app_id: a, auth_token: '${ICONIK_TOKEN}'}\n"
    assert problems(tmp_path, text) == [
        "environments.prod.iconik.auth_token: environment variable ICONIK_TOKEN is not set"
    ]


def test_misspelled_key_is_named_with_a_hint(tmp_path):
    found = problems(tmp_path, MINIMAL.replace("min_approvals: 0", "min_aprovals: 1"))
    assert found == [
        "policies[2].min_aprovals: is not a known key (check the spelling; see the README's configuration reference)"
    ]


def test_policy_on_an_undeclared_environment_is_refused(tmp_path):
    text = "environments: {prod: {}}\npolicies:\n  - {name: a, action: promotion, environment: staging, approvers: {groups: [g]}}\n"
    assert problems(tmp_path, text) == [
        "policies[0].environment: 'staging' is not a declared environment (prod)"
    ]


def test_invalid_yaml_gives_line_and_column(tmp_path):
    found = problems(tmp_path, "environments:\n  prod: {\n")
    assert found[0].startswith("line 3, column 1: not valid YAML")


def test_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_duration_and_window_errors_name_the_window(tmp_path):
    text = (
        "environments: {prod: {}}\npolicies:\n  - name: a\n    action: promotion\n    environment: prod\n"
        "    approvers: {groups: [g]}\n    expires_after: soon\n"
        "    windows: [{kind: deny, cron: 'friday', duration: 1h}]\n"
    )
    assert problems(tmp_path, text) == [
        "policies[0].expires_after: 'soon' is not a duration (use e.g. 30m, 24h, 2d, 1h30m)",
        "policies[0].windows[0].cron: 'friday' is not a valid cron expression (5 fields: m h dom mon dow)",
    ]
