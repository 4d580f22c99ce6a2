"""Credentials for Git remotes, and how they reach a git process without leaking.

:class:`GitCredentials` holds an HTTPS token or username/password and/or an SSH private
key path with a known_hosts file; it is read from environment variables
(:meth:`GitCredentials.from_env`) or from a directory of files laid out like a mounted
Kubernetes Secret (:meth:`GitCredentials.from_files`). Its ``repr``/``str`` mask the
secret. :func:`command_auth` turns it into the environment and ``-c`` options of one git
command: the password travels in the environment of that child process only and is
handed to git by a static askpass script (so it is never in a URL, in ``.git/config`` or
on a command line); SSH runs with ``BatchMode`` and ``StrictHostKeyChecking=yes``.
:func:`scrub` removes secrets from any text (git's stderr) before it reaches an error.

Called by :mod:`gitops.source.git`; the service builds the credentials from its config.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitops.errors import ConfigError

TOKEN_USERNAME = "x-access-token"
"""Username sent with a bare token (GitHub's convention; GitLab and Gitea accept any)."""

USERNAME_ENV = "GITOPS_GIT_USERNAME"
PASSWORD_ENV = "GITOPS_GIT_PASSWORD"

ASKPASS_SCRIPT = f"""#!/bin/sh
# Answers git's credential prompts from the environment of the git process that runs it.
# Written by gitops.source; it holds no secret itself.
case "$1" in
  Username*) printf '%s\\n' "${USERNAME_ENV}" ;;
  *) printf '%s\\n' "${PASSWORD_ENV}" ;;
esac
"""


@dataclass(frozen=True, repr=False)
class GitCredentials:
    """How to authenticate to a remote. ``password`` is a password or a token."""

    username: str | None = None
    password: str | None = field(default=None, compare=True)
    ssh_key_path: Path | None = None
    known_hosts_path: Path | None = None

    @classmethod
    def from_token(cls, token: str, username: str = TOKEN_USERNAME) -> GitCredentials:
        return cls(username=username, password=token)

    @classmethod
    def from_env(
        cls, prefix: str, environ: Mapping[str, str] | None = None
    ) -> GitCredentials | None:
        """Read ``{prefix}_USERNAME``, ``{prefix}_PASSWORD`` or ``{prefix}_TOKEN`` (or their
        ``_FILE`` variants naming a file holding the value), ``{prefix}_SSH_KEY_FILE`` and
        ``{prefix}_KNOWN_HOSTS_FILE``. ``None`` when none is set; :class:`ConfigError`
        (naming the variable, never its value) when they contradict or a file is missing.
        """
        env = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            direct = env.get(f"{prefix}_{name}")
            path = env.get(f"{prefix}_{name}_FILE")
            if direct and path:
                raise ConfigError(f"set only one of {prefix}_{name} and {prefix}_{name}_FILE")
            if path:
                return _read_secret(Path(path), f"{prefix}_{name}_FILE")
            return direct or None

        def path(name: str) -> Path | None:
            raw = env.get(f"{prefix}_{name}")
            if not raw:
                return None
            p = Path(raw)
            if not p.is_file():
                raise ConfigError(f"{prefix}_{name}: {p} is not a readable file")
            return p

        return cls._build(
            username=value("USERNAME"),
            password=value("PASSWORD"),
            token=value("TOKEN"),
            ssh_key_path=path("SSH_KEY_FILE"),
            known_hosts_path=path("KNOWN_HOSTS_FILE"),
            where=f"{prefix}_*",
        )

    @classmethod
    def from_files(cls, directory: Path) -> GitCredentials | None:
        """Read a directory holding any of ``username``, ``password``, ``token``,
        ``ssh-privatekey`` and ``known_hosts`` (a mounted Secret). ``None`` when it holds
        none of them."""
        if not directory.is_dir():
            raise ConfigError(f"credentials directory {directory} does not exist")

        def value(name: str) -> str | None:
            p = directory / name
            return _read_secret(p, str(p)) if p.is_file() else None

        def path(name: str) -> Path | None:
            p = directory / name
            return p if p.is_file() else None

        return cls._build(
            username=value("username"),
            password=value("password"),
            token=value("token"),
            ssh_key_path=path("ssh-privatekey"),
            known_hosts_path=path("known_hosts"),
            where=str(directory),
        )

    @classmethod
    def _build(
        cls,
        *,
        username: str | None,
        password: str | None,
        token: str | None,
        ssh_key_path: Path | None,
        known_hosts_path: Path | None,
        where: str,
    ) -> GitCredentials | None:
        if password and token:
            raise ConfigError(f"{where}: give a password or a token, not both")
        if password and not username:
            raise ConfigError(f"{where}: a password needs a username")
        if token:
            username, password = username or TOKEN_USERNAME, token
        if not (password or ssh_key_path or known_hosts_path or username):
            return None
        return cls(username, password, ssh_key_path, known_hosts_path)

    def secrets(self) -> tuple[str, ...]:
        """Every form in which the secret could show up in text (plain and Basic-encoded)."""
        if not self.password:
            return ()
        forms = [self.password, base64.b64encode(self.password.encode()).decode()]
        if self.username:
            forms.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return tuple(forms)

    def __repr__(self) -> str:
        return (
            f"GitCredentials(username={self.username!r}, "
            f"password={'***' if self.password else None}, "
            f"ssh_key_path={self.ssh_key_path}, known_hosts_path={self.known_hosts_path})"
        )

    __str__ = __repr__


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from None


@dataclass(frozen=True, repr=False)
class CommandAuth:
    """Environment and ``-c`` options for one git command (``env`` may hold the password)."""

    env: Mapping[str, str]
    config: tuple[str, ...]
    secrets: tuple[str, ...]

    def __repr__(self) -> str:
        return f"CommandAuth(config={self.config!r}, env=<{len(self.env)} variables>)"


def ssh_command(credentials: GitCredentials | None, connect_timeout: int = 30) -> str:
    """The ``GIT_SSH_COMMAND``: never prompts, never accepts an unknown host key."""
    args = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
    ]
    if credentials and credentials.known_hosts_path:
        args += [
            "-o",
            f"UserKnownHostsFile={credentials.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
    if credentials and credentials.ssh_key_path:
        args += ["-i", str(credentials.ssh_key_path), "-o", "IdentitiesOnly=yes"]
    return shlex.join(args)


def command_auth(credentials: GitCredentials | None, askpass: Path) -> CommandAuth:
    """How one git command authenticates; ``askpass`` is the script of :func:`write_askpass`."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": str(askpass),
        "SSH_ASKPASS": "",
        "GIT_SSH_COMMAND": ssh_command(credentials),
        USERNAME_ENV: (credentials.username or "") if credentials else "",
        PASSWORD_ENV: (credentials.password or "") if credentials else "",
    }
    # No credential helper may store (or supply) what we pass explicitly.
    config = ("-c", "credential.helper=") if credentials and credentials.password else ()
    return CommandAuth(env, config, credentials.secrets() if credentials else ())


def write_askpass(directory: Path) -> Path:
    """Write the askpass script (no secret in it) into ``directory`` once; its path."""
    path = directory / "askpass.sh"
    if not path.exists() or path.read_text() != ASKPASS_SCRIPT:
        tmp = directory / f".askpass.{os.getpid()}.tmp"
        tmp.write_text(ASKPASS_SCRIPT)
        tmp.chmod(0o700)
        tmp.replace(path)
    return path


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):[^@/\s]*@")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every secret and any password in a URL replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
