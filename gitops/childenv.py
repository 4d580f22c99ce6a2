"""The environment the reconciler's subprocesses (git, helm) run with.

The reconciler's own environment holds secrets the operator gave it (webhook secrets,
Git tokens, cloud credentials, ``KUBECONFIG``…). A subprocess that works on a
repository's content must not see them: a repository can make git or helm read files,
run drivers or print values, and anything in their environment could end up in a
rendered object or in a request to a server the repository names. So each subprocess
gets only :data:`PASSED` variables from the reconciler's environment (the search path,
locale and time zone, proxies and TLS roots the operator set), plus what the caller adds
explicitly (e.g. one command's Git credentials), and git ignores system and global
config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``) so no credential helper,
LFS filter or URL rewrite of the host applies to a repository's content.

Called by :mod:`gitops.source.git` and :mod:`gitops.build.helm`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PASSED = (
    "PATH",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
"""Variables of the reconciler's environment a subprocess keeps."""

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def child_env(
    extra: Mapping[str, str] | None = None,
    *,
    home: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A clean environment: :data:`PASSED` from ``environ`` (default: this process's),
    ``LC_ALL=C`` (stable messages), ``HOME`` (default: an empty ``/nonexistent``), then
    ``extra``."""
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in PASSED if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    env["HOME"] = home or "/nonexistent"
    if extra:
        env.update(extra)
    return env


def git_env(extra: Mapping[str, str] | None = None, *, home: str | None = None) -> dict[str, str]:
    """:func:`child_env` for git: no system or global git config, no prompts."""
    return child_env(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LFS_SKIP_SMUDGE": "1",
            **(extra or {}),
        },
        home=home,
    )
