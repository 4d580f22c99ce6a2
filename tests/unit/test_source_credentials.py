"""GitCredentials from the environment and from files; masking, scrubbing, the ssh command."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from gitops.errors import ConfigError
from gitops.source.credentials import (
    PASSWORD_ENV,
    GitCredentials,
    command_auth,
    scrub,
    ssh_command,
    write_askpass,
)


def test_a_token_from_the_environment_gets_the_token_username() -> None:
    creds = GitCredentials.from_env("APP", {"APP_TOKEN": "tok123"})
    assert creds == GitCredentials("x-access-token", "tok123")
    basic = GitCredentials.from_env("APP", {"APP_USERNAME": "bob", "APP_PASSWORD": "pw9876"})
    assert basic == GitCredentials("bob", "pw9876")
    assert GitCredentials.from_env("APP", {"OTHER_TOKEN": "x"}) is None


def test_file_variants_of_the_variables_and_a_secret_directory_are_read(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("filetoken\n")
    creds = GitCredentials.from_env("APP", {"APP_TOKEN_FILE": str(tmp_path / "token.txt")})
    assert creds is not None and creds.password == "filetoken"
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "username").write_text("alice\n")
    (secret / "password").write_text("pa55word\n")
    (secret / "ssh-privatekey").write_text("KEY")
    (secret / "known_hosts").write_text("host ssh-ed25519 AAAA")
    from_dir = GitCredentials.from_files(secret)
    assert from_dir == GitCredentials(
        "alice", "pa55word", secret / "ssh-privatekey", secret / "known_hosts"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert GitCredentials.from_files(empty) is None


@pytest.mark.parametrize(
    "env",
    [
        {"APP_TOKEN": "a", "APP_PASSWORD": "b", "APP_USERNAME": "u"},
        {"APP_PASSWORD": "lonely-secret"},
        {"APP_TOKEN": "a", "APP_TOKEN_FILE": "/x"},
        {"APP_TOKEN_FILE": "/does/not/exist"},
        {"APP_SSH_KEY_FILE": "/does/not/exist"},
    ],
)
def test_contradicting_or_missing_settings_are_config_errors_without_the_secret(
    env: dict[str, str],
) -> None:
    with pytest.raises(ConfigError) as e:
        GitCredentials.from_env("APP", env)
    assert "lonely-secret" not in str(e.value)
    assert "APP_" in str(e.value)


def test_the_secret_never_shows_in_repr_or_str() -> None:
    creds = GitCredentials.from_token("ghp_abcdef123456")
    assert "ghp_abcdef123456" not in repr(creds)
    assert "ghp_abcdef123456" not in str(creds)
    assert "ghp_abcdef123456" not in f"{creds}"
    assert "password=***" in repr(creds)
    auth = command_auth(creds, Path("/x/askpass.sh"))
    assert "ghp_abcdef123456" not in repr(auth)


def test_scrub_removes_plain_and_basic_encoded_secrets_and_url_passwords() -> None:
    creds = GitCredentials("bob", "hunter22")
    basic = base64.b64encode(b"bob:hunter22").decode()
    text = f"bad hunter22; Authorization: Basic {basic}; https://bob:other@h/x"
    cleaned = scrub(text, creds.secrets())
    assert "hunter22" not in cleaned and basic not in cleaned and "other" not in cleaned
    assert cleaned == "bad ***; Authorization: Basic ***; https://bob:***@h/x"


def test_the_password_reaches_git_only_through_the_askpass_environment(tmp_path: Path) -> None:
    askpass = write_askpass(tmp_path)
    assert askpass.stat().st_mode & 0o777 == 0o700
    creds = GitCredentials("bob", "hunter22")
    auth = command_auth(creds, askpass)
    assert auth.env[PASSWORD_ENV] == "hunter22"
    assert "hunter22" not in " ".join(auth.config)
    assert "hunter22" not in askpass.read_text()
    assert auth.config == ("-c", "credential.helper=")
    assert command_auth(None, askpass).config == ()


def test_ssh_runs_in_batch_mode_with_strict_host_key_checking() -> None:
    creds = GitCredentials(ssh_key_path=Path("/k/id key"), known_hosts_path=Path("/k/known_hosts"))
    args = shlex.split(ssh_command(creds))
    assert args[0] == "ssh"
    assert "StrictHostKeyChecking=yes" in args and "BatchMode=yes" in args
    assert "UserKnownHostsFile=/k/known_hosts" in args
    assert args[args.index("-i") + 1] == "/k/id key"
    assert "-i" not in shlex.split(ssh_command(None))
    assert "StrictHostKeyChecking=yes" in shlex.split(ssh_command(None))
