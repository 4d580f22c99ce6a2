"""Image references mean what they mean on Kubernetes, whatever the host's short-name
settings: ``nginx`` is ``docker.io/library/nginx:latest`` (the case that sent podman to
``localhost/nginx`` before), registries keep their ports, digests their pins."""

from __future__ import annotations

import pytest

from kubemodel.images import InvalidImage, parse_image

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("org/app", "docker.io/org/app:latest"),
        ("docker.io/nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
        ("localhost/busybox", "localhost/busybox:latest"),
        ("localhost:5000/team/app:v1", "localhost:5000/team/app:v1"),
        ("registry.example.com/a/b/c:2.0", "registry.example.com/a/b/c:2.0"),
        ("127.0.0.1:5000/mariadb:10.11", "127.0.0.1:5000/mariadb:10.11"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"nginx:1.27@{DIGEST}", f"docker.io/library/nginx:1.27@{DIGEST}"),
        ("directus/directus:10.8.3", "docker.io/directus/directus:10.8.3"),
        ("Registry/app", "Registry/app:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ],
)
def test_references_are_normalised_as_kubernetes_reads_them(given: str, normalised: str) -> None:
    assert str(parse_image(given)) == normalised


def test_the_parts_are_kept_apart() -> None:
    ref = parse_image(f"registry:5000/team/app:v2@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (
        "registry:5000",
        "team/app",
        "v2",
        DIGEST,
    )
    assert ref.repository == "registry:5000/team/app"


@pytest.mark.parametrize(
    ("given", "latest"),
    [("nginx", True), ("nginx:latest", True), ("nginx:1", False), (f"nginx@{DIGEST}", False)],
)
def test_latest_means_no_digest_and_the_latest_tag(given: str, latest: bool) -> None:
    assert parse_image(given).uses_latest is latest


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "invalid reference format"),
        ("Nginx", "must be lowercase"),
        ("nginx:", "invalid tag"),
        ("nginx:bad tag", "invalid tag"),
        ("nginx@sha256:abc", "invalid digest"),
        ("-nginx", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("registry:port/app", "invalid registry"),
        (" nginx", "invalid reference format"),
        ("x" * 300, "more than 255 characters"),
    ],
)
def test_malformed_references_say_what_is_wrong(given: str, reason: str) -> None:
    with pytest.raises(InvalidImage) as info:
        parse_image(given)
    assert reason in str(info.value)
