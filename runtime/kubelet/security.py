"""A container's security settings as the kubelet applies them: every field of the pod's
and the container's ``securityContext`` is either honoured by the engine or refused
with the kubelet's message — never silently ignored.

* :func:`security_config` turns the effective security context (the container's fields
  over the pod's, as Kubernetes' ``DetermineEffectiveSecurityContext``) into the CRI's
  :class:`~runtime.kubelet.cri.SecurityConfig`: ``runAsUser``/``runAsGroup``,
  ``supplementalGroups``, ``readOnlyRootFilesystem``, ``privileged``, capabilities
  ``add``/``drop``, ``allowPrivilegeEscalation: false`` (the kernel's no_new_privs),
  ``seccompProfile`` (``RuntimeDefault``: the engine's default profile; ``Unconfined``;
  ``Localhost``: a file under the kubelet's seccomp directory, ``<root>/seccomp/``), and
  the pod's ``hostPID``/``hostIPC``. Without a ``seccompProfile`` the container runs
  unconfined, as with Kubernetes' default kubelet (``seccompDefault: false``; podman's
  and docker's own default profile would otherwise apply, e.g. refusing ``io_uring``
  with ENOSYS). ``procMount:
  Unmasked`` (which needs user namespaces, ``hostUsers: false``) is refused.
* :func:`verify_run_as_non_root` is the kubelet's ``verifyRunAsNonRoot``: with
  ``runAsNonRoot: true`` a container whose effective user is root (``runAsUser: 0``, or
  no ``runAsUser`` and an image without a non-root ``USER``) is refused, with
  Kubernetes' messages.

A refusal is :class:`SecurityRefused` (reason ``CreateContainerConfigError``, as the
kubelet reports it in the container's waiting state). Called by
:mod:`runtime.kubelet.podsync`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.kubelet.cri import SecurityConfig


class SecurityRefused(Exception):
    """The container cannot be created as its security context asks."""

    reason = "CreateContainerConfigError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _effective(pod: Mapping[str, Any], container: Mapping[str, Any], name: str) -> Any:
    sc = container.get("securityContext") or {}
    if name in sc and sc[name] is not None:
        return sc[name]
    return ((pod.get("spec") or {}).get("securityContext") or {}).get(name)


def pod_label(pod: Mapping[str, Any]) -> str:
    """How the kubelet names a pod in messages: ``name_namespace(uid)``."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def _seccomp(pod: Mapping[str, Any], container: Mapping[str, Any], root: Path) -> str:
    profile = _effective(pod, container, "seccompProfile") or {}
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return ""
    if kind in (None, "Unconfined"):
        # Kubernetes' kubelet default (seccompDefault: false): no profile unless asked.
        return "unconfined"
    if kind == "Localhost":
        relative = str(profile.get("localhostProfile") or "")
        posix = PurePosixPath(relative)
        if not relative or posix.is_absolute() or ".." in posix.parts:
            raise SecurityRefused(
                f"localhost seccomp profile {relative!r} must be a path relative to the "
                "kubelet's seccomp directory, without '..'"
            )
        path = root / relative
        if not path.is_file():
            raise SecurityRefused(
                f"failed to load the localhost seccomp profile {relative!r}: {path} does not "
                "exist on the node"
            )
        return str(path)
    raise SecurityRefused(f"seccompProfile type {kind!r} is not supported")


def security_config(
    pod: Mapping[str, Any], container: Mapping[str, Any], seccomp_root: Path
) -> SecurityConfig:
    """The container's :class:`SecurityConfig`; raises :class:`SecurityRefused`."""
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    proc_mount = sc.get("procMount")
    if proc_mount not in (None, "Default"):
        raise SecurityRefused(
            f"procMount {proc_mount!r} is not supported by this kubelet: it needs user "
            "namespaces (hostUsers: false)"
        )
    return SecurityConfig(
        run_as_user=_effective(pod, container, "runAsUser"),
        run_as_group=_effective(pod, container, "runAsGroup"),
        read_only_root_filesystem=bool(sc.get("readOnlyRootFilesystem", False)),
        privileged=bool(sc.get("privileged", False)),
        add_capabilities=tuple(caps.get("add") or ()),
        drop_capabilities=tuple(caps.get("drop") or ()),
        supplemental_groups=tuple(int(g) for g in pod_sc.get("supplementalGroups") or ()),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        seccomp_profile=_seccomp(pod, container, seccomp_root),
        host_pid=bool(spec.get("hostPID")),
        host_ipc=bool(spec.get("hostIPC")),
    )


def _image_uid(user: str) -> int | None:
    """The uid of an image's ``USER`` (``uid`` or ``uid:gid``); 0 for none (root); None
    for a user name, which cannot be checked without the image's /etc/passwd."""
    name = user.split(":", 1)[0].strip()
    if not name:
        return 0
    return int(name) if name.isdigit() else None


def verify_run_as_non_root(
    pod: Mapping[str, Any], container: Mapping[str, Any], image_user: str
) -> None:
    """Raise :class:`SecurityRefused` as the kubelet's verifyRunAsNonRoot does."""
    if _effective(pod, container, "runAsNonRoot") is not True:
        return
    name = container.get("name")
    run_as = _effective(pod, container, "runAsUser")
    if run_as is not None:
        if int(run_as) == 0:
            raise SecurityRefused(
                "container's runAsUser breaks non-root policy "
                f'(pod: "{pod_label(pod)}", '
                f"container: {name})"
            )
        return
    uid = _image_uid(image_user)
    if uid == 0:
        raise SecurityRefused(
            "container has runAsNonRoot and image will run as root "
            f'(pod: "{pod_label(pod)}", '
            f"container: {name})"
        )
    if uid is None:
        raise SecurityRefused(
            f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
            f'cannot verify user is non-root (pod: "{pod_label(pod)}", container: {name})'
        )
