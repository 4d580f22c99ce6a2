"""GitSource against real network remotes on loopback: smart HTTP with Basic auth, and ssh.

The HTTP remote is ``git http-backend`` (CGI) behind a small Python server that demands
``x-access-token:<token>``; the tests prove a token fetches, that it is found nowhere in
the cache, the errors or the logs, and that a wrong token fails without leaking.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import structlog

from gitops.errors import SourceError
from gitops.source import GitCredentials, GitSource, SourceSpec
from tests.unit.test_source_git import commit, git, make_repo

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-t0ken-4f9a"
BACKEND = "/usr/lib/git-core/git-http-backend"


class _Server(ThreadingHTTPServer):
    project_root: Path
    expected_auth: str
    authorized_requests: int = 0


class _GitHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        if self.headers.get("Authorization") != self.server.expected_auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.authorized_requests += 1
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run([BACKEND], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_remote(tmp_path: Path) -> Iterator[tuple[str, Path, _Server]]:
    work = make_repo(tmp_path / "work")
    commit(work, {"app.yaml": "v: 1\n"}, "first")
    git(work, "tag", "v1.0.0")
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")],
        check=True,
        capture_output=True,
    )
    server = _Server(("127.0.0.1", 0), _GitHandler)
    server.project_root = root
    server.expected_auth = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", work, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_token_fetches_over_smart_http_and_is_never_written_or_logged(
    http_remote: tuple[str, Path, _Server], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, work, server = http_remote
    source = GitSource(tmp_path / "cache")
    creds = GitCredentials.from_env("REPO", {"REPO_TOKEN": TOKEN})
    assert creds is not None
    spec = SourceSpec(url, "^1", creds)
    with structlog.testing.capture_logs() as logs:
        rev = source.fetch(spec)
        tree = source.checkout(spec, rev.commit)
    assert rev.ref == "refs/tags/v1.0.0"
    assert rev.commit == git(work, "rev-parse", "HEAD")
    assert (tree / "app.yaml").read_text() == "v: 1\n"
    assert server.authorized_requests > 0
    # incremental fetch over the same authenticated remote
    second = commit(work, {"app.yaml": "v: 2\n"})
    git(work, "push", "-q", str(server.project_root / "repo.git"), "main")
    assert source.fetch(SourceSpec(url, "main", creds)).commit == second
    for needle in (TOKEN.encode(), base64.b64encode(f"x-access-token:{TOKEN}".encode())):
        assert _files_containing(source.cache_dir, needle) == []
    assert TOKEN not in repr(logs) and TOKEN not in repr(spec)
    assert "git fetched" in repr(logs) and TOKEN not in caplog.text
    config = (source.repository_dir(url) / "config").read_text()
    assert f"url = {url}\n" in config


def test_a_wrong_token_is_a_permanent_error_that_does_not_leak_it(
    http_remote: tuple[str, Path, _Server], tmp_path: Path
) -> None:
    url, _, server = http_remote
    wrong = "wrong-t0ken-d00d"
    source = GitSource(tmp_path / "cache")
    for creds in (GitCredentials.from_token(wrong), None):
        with pytest.raises(SourceError) as e:
            source.fetch(SourceSpec(url, "main", creds))
        assert not e.value.retryable
        assert "access denied" in str(e.value)
        assert wrong not in str(e.value) and wrong not in repr(e.value)
        assert e.value.__cause__ is None and e.value.__suppress_context__
    assert server.authorized_requests == 0
    assert _files_containing(source.cache_dir, wrong.encode()) == []
    assert not source.repository_dir(url).exists()


def test_an_unreachable_http_remote_is_a_retryable_error(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        port = s.server_address[1]  # bound then closed: nothing listens there afterwards
    source = GitSource(tmp_path / "cache")
    with pytest.raises(SourceError) as e:
        source.fetch(
            SourceSpec(
                f"http://127.0.0.1:{port}/repo.git", "main", GitCredentials.from_token(TOKEN)
            )
        )
    assert e.value.retryable
    assert TOKEN not in str(e.value)


def test_plain_http_with_credentials_to_a_non_loopback_host_is_refused(tmp_path: Path) -> None:
    source = GitSource(tmp_path / "cache")
    with pytest.raises(SourceError) as e:
        source.fetch(
            SourceSpec("http://git.example.com/repo.git", "main", GitCredentials.from_token(TOKEN))
        )
    assert not e.value.retryable
    assert "plain http" in str(e.value)


def test_an_ssh_remote_that_refuses_connections_is_a_retryable_error(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        port = s.server_address[1]
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    creds = GitCredentials(ssh_key_path=key, known_hosts_path=known_hosts)
    source = GitSource(tmp_path / "cache")
    with pytest.raises(SourceError) as e:
        source.fetch(SourceSpec(f"ssh://git@127.0.0.1:{port}/repo.git", "main", creds))
    assert e.value.retryable
    assert "fetching ssh://git@127.0.0.1" in str(e.value)
