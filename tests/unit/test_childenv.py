"""The clean environment of git and helm (gitops.childenv): none of the reconciler's
secrets, no host git config; and the Git cache runs every git command with it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops.childenv import child_env, git_env
from gitops.source import git as gitmod


def test_only_the_search_path_locale_proxies_and_tls_roots_pass() -> None:
    environ = {
        "PATH": "/opt/bin:/usr/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ssl/roots.pem",
        "GITOPS_WEBHOOK_SECRET": "s3cret",
        "AWS_SECRET_ACCESS_KEY": "key",
        "KUBECONFIG": "/root/.kube/config",
        "HOME": "/root",
    }
    env = child_env({"EXTRA": "1"}, environ=environ)
    assert env == {
        "PATH": "/opt/bin:/usr/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ssl/roots.pem",
        "LC_ALL": "C",
        "LANGUAGE": "C",
        "HOME": "/nonexistent",
        "EXTRA": "1",
    }


def test_git_ignores_the_hosts_system_and_global_config() -> None:
    env = git_env()
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_LFS_SKIP_SMUDGE"] == "1"


def test_the_git_cache_runs_git_without_the_reconcilers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "s3cret")
    seen: list[dict[str, str]] = []
    real = subprocess.run

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(dict(kwargs.get("env") or {}))
        return real(*args, **kwargs)

    monkeypatch.setattr(gitmod.subprocess, "run", spy)
    out = gitmod._execute(tmp_path / "repo.git", ["init", "--bare", "--quiet"], {"X": "1"})
    assert out == "" and (tmp_path / "repo.git" / "HEAD").is_file()
    (env,) = seen
    assert "GITOPS_WEBHOOK_SECRET" not in env
    assert env["GIT_DIR"] == str(tmp_path / "repo.git") and env["X"] == "1"
