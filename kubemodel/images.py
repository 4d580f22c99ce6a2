"""Container image references as Kubernetes means them (the grammar of
``github.com/distribution/reference`` that kubelet and the CRI runtimes use).

Who uses it: the kubelet (what to look up, pull and report), admission (the default
``imagePullPolicy``), and anything that compares images. A reference is
``[domain/]path[:tag][@digest]``:

* the first ``/``-separated part is a registry domain when it contains ``.`` or ``:``,
  is ``localhost``, or has upper-case letters; otherwise the domain is ``docker.io``
  (``index.docker.io`` is the same registry) — whatever the host's short-name settings;
* on ``docker.io`` a one-part path is an official image under ``library/``;
* without tag and digest the tag is ``latest``; a digest alone gets no tag.

So ``nginx`` is ``docker.io/library/nginx:latest``, ``org/app`` is
``docker.io/org/app:latest``, ``localhost/busybox`` stays on ``localhost`` and
``registry:5000/team/app@sha256:…`` keeps its port and digest. Malformed references
raise :class:`InvalidImage` with the reason, as Kubernetes' ``InvalidImageName``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = re.compile(r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]")
_PORT = re.compile(r"[0-9]+")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


class InvalidImage(ValueError):
    """An image reference Kubernetes would refuse (``InvalidImageName``)."""


@dataclass(frozen=True)
class ImageReference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """``domain/path``: the repository a pull talks to."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def uses_latest(self) -> bool:
        """Kubernetes defaults ``imagePullPolicy`` to Always for these: the tag is
        ``latest`` and no digest pins the image."""
        return not self.digest and self.tag == DEFAULT_TAG


def _valid_domain(domain: str) -> bool:
    host, _, port = domain.rpartition(":") if not domain.endswith("]") else (domain, "", "")
    if not host:
        host, port = domain, ""
    if port and not _PORT.fullmatch(port):
        return False
    if _IPV6.fullmatch(host):
        return True
    return all(_DOMAIN_COMPONENT.fullmatch(part) for part in host.split("."))


def parse_image(text: str) -> ImageReference:
    """The normalised reference of ``text``; raises :class:`InvalidImage`."""
    if not text or text.strip() != text:
        raise InvalidImage(f"invalid reference format: {text!r}")
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidImage(f"invalid reference format: invalid digest {digest!r}")
    if digest.startswith("sha256:") and not _SHA256.fullmatch(digest):
        raise InvalidImage(f"invalid reference format: invalid checksum digest {digest!r}")
    slash = rest.find("/")
    first = rest[:slash] if slash >= 0 else ""
    if slash >= 0 and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    ):
        domain, remainder = first, rest[slash + 1 :]
    else:
        domain, remainder = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    last = remainder.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        remainder, _, tag = remainder.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise InvalidImage(f"invalid reference format: invalid tag {tag!r}")
    if remainder.lower() != remainder:
        raise InvalidImage(
            f"invalid reference format: repository name ({remainder}) must be lowercase"
        )
    if not remainder or not all(_COMPONENT.fullmatch(c) for c in remainder.split("/")):
        raise InvalidImage(f"invalid reference format: {text!r}")
    if not _valid_domain(domain):
        raise InvalidImage(f"invalid reference format: invalid registry {domain!r}")
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPOSITORY + remainder
    if len(f"{domain}/{remainder}") > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImage(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageReference(domain, remainder, tag, digest)


def normalize_image(text: str) -> str:
    """``text`` fully qualified (``nginx`` → ``docker.io/library/nginx:latest``)."""
    return str(parse_image(text))
