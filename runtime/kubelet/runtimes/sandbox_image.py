"""The docker sandbox ("pause") image, made on the host when the engine lacks it.

A kubelet on containerd pulls ``registry.k8s.io/pause`` the first time it creates a pod
sandbox; the machines this project runs on have no registry, so the docker runtime makes
its pause image itself, the way podman makes its own infra image from catatonit: a root
filesystem holding one **statically linked** binary from the host, imported with
``docker import``. In order of preference:

* ``catatonit`` (Debian package ``catatonit``, which podman depends on), run as
  ``catatonit -P``: its pause mode, which sleeps until SIGINT or SIGTERM and exits;
* ``busybox`` (Debian package ``busybox-static``; the dynamically linked ``busybox``
  package cannot be used in an empty root filesystem), running
  ``sh -c 'trap exit TERM INT; while :; do sleep 3600 & wait; done'``.

Only static binaries qualify: the image has no libraries. :func:`pause_rootfs` raises
:class:`NoPauseBinary` saying what to install when the host has neither.

Who calls it: :class:`runtime.kubelet.runtimes.docker.DockerRuntime` before its first
sandbox.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PT_INTERP = 3

CATATONIT_PATHS = (
    "/usr/bin/catatonit",
    "/usr/libexec/podman/catatonit",
    "/usr/libexec/catatonit/catatonit",
)
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
BUSYBOX_PAUSE = "trap exit TERM INT; while :; do sleep 3600 & wait; done"


class NoPauseBinary(Exception):
    """The host has no static binary to make the pause image from."""


@dataclass(frozen=True)
class PauseRootfs:
    """A pause image's root filesystem (a tar archive) and its command."""

    tar: bytes
    cmd: tuple[str, ...]
    source: str

    def import_changes(self) -> list[str]:
        """``docker import --change`` values: the command, and a PATH (an imported image
        has no environment of its own)."""
        return ["ENV PATH=/bin", f"CMD {json.dumps(list(self.cmd))}"]


def is_static_elf(path: str | Path) -> bool:
    """Whether ``path`` is an ELF executable without a program interpreter (statically
    linked, so it runs in an empty root filesystem)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return False
            is64 = head[4] == 2
            endian = "<" if head[5] == 1 else ">"
            if is64:
                (phoff,) = struct.unpack_from(endian + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            else:
                (phoff,) = struct.unpack_from(endian + "I", head, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
            if phentsize < 4 or phnum > 512:
                return False
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    if len(table) < phentsize * phnum:
        return False
    for i in range(phnum):
        (kind,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if kind == PT_INTERP:
            return False
    return True


def _first_static(paths: Sequence[str]) -> Path | None:
    for candidate in paths:
        path = Path(candidate)
        if path.is_file() and is_static_elf(path.resolve()):
            return path.resolve()
    return None


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def pause_rootfs(
    catatonit: Sequence[str] = CATATONIT_PATHS, busybox: Sequence[str] = BUSYBOX_PATHS
) -> PauseRootfs:
    """The pause image's root filesystem from the host's static catatonit, else its
    static busybox (see the module docstring)."""
    buffer = io.BytesIO()
    found = _first_static(catatonit)
    if found is not None:
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            _add_dir(tar, "bin")
            _add_file(tar, "bin/pause", found.read_bytes())
        return PauseRootfs(buffer.getvalue(), ("/bin/pause", "-P"), str(found))
    found = _first_static(busybox)
    if found is not None:
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            _add_dir(tar, "bin")
            _add_dir(tar, "tmp", 0o1777)
            _add_file(tar, "bin/busybox", found.read_bytes())
            for applet in ("sh", "sleep"):
                _add_link(tar, f"bin/{applet}", "busybox")
        return PauseRootfs(buffer.getvalue(), ("/bin/sh", "-c", BUSYBOX_PAUSE), str(found))
    raise NoPauseBinary(
        "no statically linked catatonit or busybox on this host to make the docker sandbox "
        f"image from (looked at {', '.join((*catatonit, *busybox))}): install one with "
        "`apt-get install catatonit` (or busybox-static)"
    )
