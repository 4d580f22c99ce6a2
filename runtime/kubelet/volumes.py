"""A pod's volumes on the host, and the mounts of each of its containers.

Who calls it: the kubelet's pod sync. Before it starts a pod's containers it calls
:meth:`VolumeManager.setup`; for each container it asks :meth:`VolumeManager.mounts`
for the bind mounts to put in :class:`runtime.kubelet.cri.ContainerConfig`; on its
periodic resync it calls :meth:`VolumeManager.refresh` so ConfigMap, Secret and
downward API changes reach running containers; when a pod is gone it calls
:meth:`VolumeManager.teardown`, and :meth:`VolumeManager.pod_dirs` finds orphans after
a restart.

Layout, as Kubernetes' kubelet lays out ``/var/lib/kubelet/pods``::

    <root>/<pod uid>/volumes/kubernetes.io~empty-dir/<volume>      emptyDir (0777)
    <root>/<pod uid>/volumes/kubernetes.io~configmap/<volume>      configMap
    <root>/<pod uid>/volumes/kubernetes.io~secret/<volume>         secret
    <root>/<pod uid>/volumes/kubernetes.io~downward-api/<volume>   downwardAPI
    <root>/<pod uid>/volumes/kubernetes.io~projected/<volume>      projected
    <root>/<pod uid>/volumes/kubernetes.io~pvc/<volume>            -> the bound PV's path

Memory-backed volumes (emptyDir ``medium: Memory``, and secret and projected volumes,
which Kubernetes keeps off disk) live under ``memory_root`` (on the tmpfs ``/dev/shm``
by default) and the path above is a symlink to them. emptyDir ``Memory`` fails with a
clear error when ``memory_root`` is not on a tmpfs; secrets and projected volumes then
fall back to disk.

ConfigMap, Secret, downward API and projected contents are written by
:class:`AtomicWriter` as Kubernetes' AtomicWriter does: the files live in a timestamped
directory ``..2024_01_02_03_04_05.123456789``, ``..data`` is a symlink to it, every
user-visible name is a symlink through ``..data``, and an update writes a new
timestamped directory and swaps ``..data`` with one ``rename``. A container that
bind-mounts the volume directory sees every update at once; one that mounts a single
file with ``subPath`` keeps the file it started with, as in Kubernetes.

Errors: :class:`VolumeError` (reason ``FailedMount``, message worded as the kubelet's
event) from setup and refresh; :class:`runtime.kubelet.env.ContainerConfigError` from
:meth:`VolumeManager.mounts` (a bad ``subPath`` is a ``CreateContainerConfigError`` in
Kubernetes).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.kubelet.cri import Mount
from runtime.kubelet.env import (
    ContainerConfigError,
    expand_with,
    field_value,
    resource_value,
)
from runtime.kubelet.sources import CachedSource, ObjectSource, SourceError
from runtime.kubelet.tokens import ClientTokenRequester, TokenError, TokenManager

REASON_FAILED_MOUNT = "FailedMount"

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIG_MAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"
CLAIM = "kubernetes.io~pvc"  # a symlink to the bound PersistentVolume's host path

SUPPORTED_TYPES = (
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
    "persistentVolumeClaim",
    "ephemeral",
)
_READ_ONLY_TYPES = frozenset({"configMap", "secret", "downwardAPI", "projected"})
_PLUGIN_DIRS = {
    "emptyDir": EMPTY_DIR,
    "configMap": CONFIG_MAP,
    "secret": SECRET,
    "downwardAPI": DOWNWARD_API,
    "projected": PROJECTED,
    "persistentVolumeClaim": CLAIM,
    "ephemeral": CLAIM,
}
DEFAULT_MODE = 0o644

# Kubernetes' SetVolumeOwnership masks, applied when the pod has an fsGroup.
_RW_MASK = 0o660
_RO_MASK = 0o440
_EXEC_MASK = 0o110


class VolumeError(Exception):
    """A volume could not be set up (or refreshed). ``message`` is the kubelet's event
    message; ``failures`` holds one error per failed volume (this one first)."""

    reason: str = REASON_FAILED_MOUNT
    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        volume: str = "",
        failures: Sequence[VolumeError] = (),
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.volume = volume
        self.failures: list[VolumeError] = list(failures) or [self]
        if retryable is not None:
            self.retryable = retryable


class _Failure(Exception):
    """What went wrong with one volume, before it is worded as an event."""

    def __init__(self, detail: str, *, retryable: bool = True, prefix: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.prefix = prefix  # None: 'MountVolume.SetUp failed for volume "<name>" : '


def _aggregate(errors: Sequence[str]) -> str:
    """The message of Kubernetes' ``utilerrors.NewAggregate``."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


# --- the atomic writer --------------------------------------------------------------

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
_MAX_FILE_NAME = 255
_MAX_PATH = 4096


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = DEFAULT_MODE


def _validate_path(target: str) -> None:
    if not target:
        raise ValueError(f'invalid path: must not be empty: "{target}"')
    if target.startswith("/"):
        raise ValueError(f"invalid path: must be relative path: {target}")
    if len(target) > _MAX_PATH:
        raise ValueError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    items = target.split("/")
    for item in items:
        if item == "..":
            raise ValueError(f"invalid path: must not contain '..': {target}")
        if len(item) > _MAX_FILE_NAME:
            raise ValueError(
                f"invalid path: filenames must be less than or equal to {_MAX_FILE_NAME} characters"
            )
    if items[0].startswith("..") and len(items[0]) > 2:
        raise ValueError(f"invalid path: must not start with '..': {target}")


class AtomicWriter:
    """Projects a set of files into ``target`` atomically (see the module docstring).

    Not safe for concurrent use on one target: callers serialise (the volume manager
    holds a lock per pod). All methods block; run them off the event loop.
    """

    def __init__(self, target: Path) -> None:
        self.target = target

    def current(self) -> Path | None:
        """The timestamped directory ``..data`` points to, if any."""
        try:
            name = (self.target / DATA_DIR).readlink()
        except OSError:
            return None
        return self.target / name.name

    def write(
        self,
        payload: Mapping[str, FileProjection],
        set_perms: Callable[[Path], None] | None = None,
    ) -> bool:
        """Make ``target`` show exactly ``payload``; False when it already did."""
        clean: dict[str, FileProjection] = {}
        for path, projection in payload.items():
            _validate_path(path)
            clean[posixpath.normpath(path)] = projection
        old = self.current()
        to_remove: set[str] = set()
        if old is not None and old.is_dir():
            to_remove = self._paths_to_remove(clean, old)
            if not to_remove and not self._differs(clean, old):
                self._create_user_visible(clean)  # repair links lost to a crash
                return False
        ts_dir = Path(
            tempfile.mkdtemp(
                prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=self.target
            )
        )
        try:
            ts_dir.chmod(0o755)  # group and other must traverse it, whatever the umask
            for path, projection in clean.items():
                full = ts_dir / path
                self._make_dirs(ts_dir, full.parent)
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(projection.data)
                full.chmod(projection.mode & 0o7777)
            if set_perms is not None:
                set_perms(ts_dir)
            self._create_user_visible(clean)
            tmp_link = self.target / NEW_DATA_DIR
            with contextlib.suppress(FileNotFoundError):
                tmp_link.unlink()
            tmp_link.symlink_to(ts_dir.name)
            tmp_link.rename(self.target / DATA_DIR)
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise
        # User-visible links of paths no longer projected: those the previous version
        # had, and any other top-level link into ..data (e.g. when that version is lost).
        tops = {path.split("/", 1)[0] for path in clean}
        stale_links = {path for path in to_remove if "/" not in path}
        for entry in self.target.iterdir():
            into_data = entry.is_symlink() and (str(entry.readlink()) == f"{DATA_DIR}/{entry.name}")
            if into_data and entry.name not in tops:
                stale_links.add(entry.name)
        for name in stale_links:
            with contextlib.suppress(FileNotFoundError):
                (self.target / name).unlink()
        # The previous version, and any left behind by an interrupted write.
        for entry in self.target.iterdir():
            stale = entry.name.startswith("..") and entry.name not in (
                DATA_DIR,
                NEW_DATA_DIR,
                ts_dir.name,
            )
            if stale and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        return True

    @staticmethod
    def _make_dirs(top: Path, directory: Path) -> None:
        missing: list[Path] = []
        while directory != top and not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir()
            d.chmod(0o755)

    @staticmethod
    def _differs(payload: Mapping[str, FileProjection], old: Path) -> bool:
        for path, projection in payload.items():
            try:
                if (old / path).read_bytes() != projection.data:
                    return True
            except OSError:
                return True
        return False

    @staticmethod
    def _paths_to_remove(payload: Mapping[str, FileProjection], old: Path) -> set[str]:
        existing: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(old):
            rel = os.path.relpath(dirpath, old)
            for name in [*dirnames, *filenames]:
                existing.add(name if rel == "." else f"{rel}/{name}")
        wanted: set[str] = set()
        for path in payload:
            while path:
                wanted.add(path)
                path = posixpath.dirname(path)
        return existing - wanted

    def _create_user_visible(self, payload: Mapping[str, FileProjection]) -> None:
        for path in payload:
            top = path.split("/", 1)[0]
            link = self.target / top
            if not os.path.lexists(link):
                link.symlink_to(f"{DATA_DIR}/{top}")


# --- payloads -----------------------------------------------------------------------


def _mode(value: Any, default: int) -> int:
    if value is None:
        return default
    return int(value)


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Failure(f"invalid base64 data: {exc}") from exc


def _make_payload(
    items: Sequence[Mapping[str, Any]] | None,
    data: Mapping[str, bytes],
    default_mode: int,
    optional: bool,
    missing_key: Callable[[str], str],
) -> dict[str, FileProjection]:
    """Kubernetes' configmap/secret ``MakePayload``: every key as a file, or only the
    listed ``items`` (key → path, with their own mode)."""
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    payload: dict[str, FileProjection] = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in data:
            if optional:
                continue
            raise _Failure(missing_key(key))
        payload[str(item.get("path") or key)] = FileProjection(
            data[key], _mode(item.get("mode"), default_mode)
        )
    return payload


@dataclass
class _Context:
    pod: Mapping[str, Any]
    namespace: str
    pod_ip: str
    node_name: str
    node_ip: str
    node_allocatable: Mapping[str, Any]

    @property
    def pod_ips(self) -> list[str]:
        status = self.pod.get("status") or {}
        ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
        return ips or ([self.pod_ip] if self.pod_ip else [])


# --- plans: what each volume needs on the host -------------------------------------


@dataclass
class _DirPlan:
    """An emptyDir."""

    name: str
    memory: bool
    size_limit: str = ""


@dataclass
class _ProjectionPlan:
    """configMap, secret, downwardAPI, projected."""

    name: str
    plugin: str
    payload: dict[str, FileProjection]
    memory: bool


@dataclass
class _HostPlan:
    """hostPath, or a bound PV's hostPath/local path."""

    name: str
    event_name: str  # the volume the event names (the PV's name for claims)
    path: str
    type: str
    local: bool = False
    claim: bool = False


_Plan = _DirPlan | _ProjectionPlan | _HostPlan


def volume_type(volume: Mapping[str, Any]) -> str:
    """The volume's source field (``emptyDir`` when it has none, as API defaulting does)."""
    for key in SUPPORTED_TYPES:
        if volume.get(key) is not None:
            return key
    others = [k for k in volume if k != "name" and volume[k] is not None]
    return others[0] if others else "emptyDir"


@dataclass
class _PodState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class VolumeManager:
    """Sets up, refreshes and tears down the volumes of the pods on one node.

    ``root`` is the kubelet's pods directory (``<state>/nodes/<node>/pods``);
    ``node_allocatable`` is what unset limits default to in downward API files;
    ``memory_root`` is where memory-backed volumes go (default: a directory of
    ``/dev/shm`` named after ``root``); ``tokens`` requests the tokens of projected
    ``serviceAccountToken`` sources (default: over the API client of a
    :class:`CachedSource`; none for other sources, which then refuse such volumes).
    """

    def __init__(
        self,
        root: Path,
        source: ObjectSource,
        *,
        node_allocatable: Mapping[str, str] | None = None,
        memory_root: Path | None = None,
        tokens: TokenManager | None = None,
    ) -> None:
        self.root = Path(root)
        self.source = source
        if tokens is None and isinstance(source, CachedSource):
            # The kubelet's own source: its API client also asks for the tokens.
            tokens = TokenManager(ClientTokenRequester(source.client))
        self.tokens = tokens
        self.node_allocatable: Mapping[str, str] = dict(node_allocatable or {})
        if memory_root is None:
            digest = hashlib.sha256(str(self.root.absolute()).encode()).hexdigest()[:16]
            memory_root = Path("/dev/shm") / "gitops-kubelet" / digest
        self.memory_root = Path(memory_root)
        self._pods: dict[str, _PodState] = {}
        self._memory_is_tmpfs: bool | None = None

    # --- public API -------------------------------------------------------------------
    async def setup(
        self, pod: Mapping[str, Any], *, pod_ip: str = "", node_name: str = "", node_ip: str = ""
    ) -> None:
        """Create (or bring up to date) every volume of the pod. Raises
        :class:`VolumeError` after trying them all when any failed."""
        await self._sync(pod, pod_ip, node_name, node_ip, refresh_only=False)

    async def refresh(
        self, pod: Mapping[str, Any], *, pod_ip: str = "", node_name: str = "", node_ip: str = ""
    ) -> bool:
        """Re-project configMap, secret, downwardAPI and projected volumes from the
        current objects and pod; True when any file changed."""
        return await self._sync(pod, pod_ip, node_name, node_ip, refresh_only=True)

    def mounts(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        env: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> list[Mount]:
        """The container's ``volumeMounts`` as host → container bind mounts.

        ``env`` is the container's environment (from
        :func:`runtime.kubelet.env.container_env`), for ``subPathExpr``. Call after
        :meth:`setup`. Raises :class:`ContainerConfigError`.
        """
        env_map = dict(env.items() if isinstance(env, Mapping) else env or ())
        uid = _uid(pod)
        volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
        cname = str(container.get("name") or "")
        out: list[Mount] = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm.get("name") or "")
            volume = volumes.get(name)
            if volume is None:
                raise ContainerConfigError(
                    f'cannot find volume "{name}" to mount into container "{cname}"'
                )
            kind = volume_type(volume)
            host = self._host_path(uid, volume, kind)
            if host is None:
                raise ContainerConfigError(
                    f'volume "{name}" of container "{cname}" is not set up on this node yet'
                )
            sub = str(vm.get("subPath") or "")
            if vm.get("subPathExpr"):
                sub = _expand_sub_path(str(vm["subPathExpr"]), env_map)
            if sub:
                host = _prepare_sub_path(host, sub, name, cname)
            read_only = bool(vm.get("readOnly")) or kind in _READ_ONLY_TYPES
            if kind == "persistentVolumeClaim":
                read_only = read_only or bool(volume[kind].get("readOnly"))
            out.append(Mount(str(host), str(vm.get("mountPath") or ""), read_only))
        return out

    async def teardown(self, pod_uid: str) -> None:
        """Remove every volume directory of the pod (idempotent). hostPath directories
        and PersistentVolume data are outside these directories and stay."""
        state = self._pods.get(pod_uid) or _PodState()
        async with state.lock:
            await asyncio.to_thread(self._remove_pod, pod_uid)
        self._pods.pop(pod_uid, None)
        if self.tokens is not None:
            self.tokens.forget(pod_uid)

    def empty_dir_path(self, pod_uid: str, volume: str) -> Path | None:
        """Where the pod's emptyDir ``volume`` lives on the host (a memory-backed one's
        tmpfs directory), or None when it is not set up."""
        return self._host_path(pod_uid, {"name": volume}, "emptyDir")

    def pod_dirs(self) -> list[str]:
        """UIDs of the pods with directories on disk, under the pods directory or the
        memory root (for orphan cleanup: :meth:`teardown` those no longer bound here)."""
        uids: set[str] = set()
        for base in (self.root, self.memory_root):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for entry in base.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        uids.add(entry.name)
        return sorted(uids)

    # --- setup ------------------------------------------------------------------------
    async def _sync(
        self,
        pod: Mapping[str, Any],
        pod_ip: str,
        node_name: str,
        node_ip: str,
        *,
        refresh_only: bool,
    ) -> bool:
        uid = _uid(pod)
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        ctx = _Context(
            pod=pod,
            namespace=str(meta.get("namespace") or "default"),
            pod_ip=pod_ip,
            node_name=node_name or str(spec.get("nodeName") or ""),
            node_ip=node_ip,
            node_allocatable=self.node_allocatable,
        )
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        state = self._pods.setdefault(uid, _PodState())
        failures: list[VolumeError] = []
        changed = False
        async with state.lock:
            for volume in spec.get("volumes") or []:
                name = str(volume.get("name") or "")
                kind = volume_type(volume)
                if refresh_only and kind not in _READ_ONLY_TYPES:
                    continue
                event_name = name
                try:
                    plan = await self._plan(ctx, volume, kind)
                    if isinstance(plan, _HostPlan):
                        event_name = plan.event_name
                    changed |= await asyncio.to_thread(
                        self._apply, uid, plan, None if fs_group is None else int(fs_group)
                    )
                except _Failure as exc:
                    prefix = exc.prefix
                    if prefix is None:
                        prefix = f'MountVolume.SetUp failed for volume "{event_name}" : '
                    failures.append(
                        VolumeError(prefix + exc.detail, volume=name, retryable=exc.retryable)
                    )
                except OSError as exc:
                    failures.append(
                        VolumeError(
                            f'MountVolume.SetUp failed for volume "{event_name}" : {exc}',
                            volume=name,
                        )
                    )
        if failures:
            first = failures[0]
            raise VolumeError(
                first.message,
                volume=first.volume,
                failures=failures,
                retryable=any(f.retryable for f in failures),
            )
        return changed

    async def _plan(self, ctx: _Context, volume: Mapping[str, Any], kind: str) -> _Plan:
        name = str(volume.get("name") or "")
        src: Mapping[str, Any] = volume.get(kind) or {}
        match kind:
            case "emptyDir":
                medium = str(src.get("medium") or "")
                if medium not in ("", "Memory"):
                    raise _Failure(
                        f'emptyDir medium "{medium}" is not supported by the built-in kubelet '
                        '(use "" or "Memory")',
                        retryable=False,
                    )
                return _DirPlan(name, medium == "Memory", str(src.get("sizeLimit") or ""))
            case "hostPath":
                return _HostPlan(name, name, str(src.get("path") or ""), str(src.get("type") or ""))
            case "configMap":
                payload = await self._object_payload(
                    ctx, "configmap", str(src.get("name") or ""), src, src.get("defaultMode")
                )
                return _ProjectionPlan(name, CONFIG_MAP, payload, memory=False)
            case "secret":
                payload = await self._object_payload(
                    ctx, "secret", str(src.get("secretName") or ""), src, src.get("defaultMode")
                )
                return _ProjectionPlan(name, SECRET, payload, memory=True)
            case "downwardAPI":
                mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
                errors: list[str] = []
                payload = self._downward_payload(ctx, src.get("items") or [], mode, errors)
                if errors:
                    raise _Failure(_aggregate(errors))
                return _ProjectionPlan(name, DOWNWARD_API, payload, memory=False)
            case "projected":
                return _ProjectionPlan(
                    name, PROJECTED, await self._projected_payload(ctx, src, name), memory=True
                )
            case "persistentVolumeClaim" | "ephemeral":
                return await self._claim_plan(ctx, volume, kind)
        raise _Failure(
            f'volume type "{kind}" is not supported by the built-in kubelet '
            f"(supported: {', '.join(SUPPORTED_TYPES)})",
            retryable=False,
        )

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.source.get("v1", plural, namespace, name)
        except SourceError as exc:
            raise _Failure(exc.message, retryable=exc.retryable) from exc

    async def _object_data(
        self, ctx: _Context, kind: str, name: str, optional: bool
    ) -> dict[str, bytes]:
        obj = await self._get(
            "configmaps" if kind == "configmap" else "secrets", ctx.namespace, name
        )
        if obj is None:
            if optional:
                return {}
            raise _Failure(f'{kind} "{name}" not found')
        data: dict[str, bytes] = {}
        if kind == "configmap":
            for k, v in (obj.get("data") or {}).items():
                data[str(k)] = str(v).encode()
            for k, v in (obj.get("binaryData") or {}).items():
                data.setdefault(str(k), _b64(v))
        else:
            for k, v in (obj.get("data") or {}).items():
                data[str(k)] = _b64(v)
        return data

    async def _object_payload(
        self,
        ctx: _Context,
        kind: str,
        name: str,
        src: Mapping[str, Any],
        default_mode: Any,
    ) -> dict[str, FileProjection]:
        optional = bool(src.get("optional"))
        data = await self._object_data(ctx, kind, name, optional)
        if kind == "configmap":
            missing = "configmap references non-existent config key: {}"
        else:
            missing = "references non-existent secret key: {}"
        return _make_payload(
            src.get("items"),
            data,
            _mode(default_mode, DEFAULT_MODE),
            optional,
            missing.format,
        )

    def _downward_payload(
        self,
        ctx: _Context,
        items: Sequence[Mapping[str, Any]],
        default_mode: int,
        errors: list[str],
    ) -> dict[str, FileProjection]:
        """Kubernetes' downwardapi ``CollectData``: every item that can be computed, and
        the errors of the others."""
        payload: dict[str, FileProjection] = {}
        for item in items:
            path = posixpath.normpath(str(item.get("path") or ""))
            mode = _mode(item.get("mode"), default_mode)
            value = ""
            try:
                if item.get("fieldRef") is not None:
                    ref = item["fieldRef"]
                    value = field_value(
                        ctx.pod,
                        str(ref.get("fieldPath") or ""),
                        str(ref.get("apiVersion") or "v1"),
                        node_name=ctx.node_name,
                        node_ip=ctx.node_ip,
                        pod_ip=ctx.pod_ip,
                        pod_ips=ctx.pod_ips,
                    )
                elif item.get("resourceFieldRef") is not None:
                    value = resource_value(
                        ctx.pod, None, item["resourceFieldRef"], ctx.node_allocatable
                    )
            except ValueError as exc:
                errors.append(str(exc))
            payload[path] = FileProjection(value.encode(), mode)
        return payload

    async def _projected_payload(
        self, ctx: _Context, src: Mapping[str, Any], volume: str = ""
    ) -> dict[str, FileProjection]:
        default_mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
        payload: dict[str, FileProjection] = {}
        errors: list[str] = []
        for source in src.get("sources") or []:
            try:
                if source.get("configMap") is not None or source.get("secret") is not None:
                    kind = "configmap" if source.get("configMap") is not None else "secret"
                    ref = source["configMap" if kind == "configmap" else "secret"]
                    payload.update(
                        await self._object_payload(
                            ctx, kind, str(ref.get("name") or ""), ref, default_mode
                        )
                    )
                elif source.get("downwardAPI") is not None:
                    sub_errors: list[str] = []
                    part = self._downward_payload(
                        ctx, source["downwardAPI"].get("items") or [], default_mode, sub_errors
                    )
                    if sub_errors:
                        errors.append(_aggregate(sub_errors))
                        continue
                    payload.update(part)
                elif source.get("serviceAccountToken") is not None:
                    path, token = await self._token(ctx, source["serviceAccountToken"], volume)
                    fs_group = ((ctx.pod.get("spec") or {}).get("securityContext") or {}).get(
                        "fsGroup"
                    )
                    mode = 0o600 if fs_group is not None else default_mode
                    payload[path] = FileProjection(token.encode(), mode)
                else:
                    kinds = [k for k in source if source[k] is not None]
                    raise _Failure(
                        f'projected volume source "{kinds[0] if kinds else "?"}" is not '
                        "supported by the built-in kubelet (supported: configMap, secret, "
                        "downwardAPI, serviceAccountToken)",
                        retryable=False,
                    )
            except _Failure as exc:
                if not exc.retryable:
                    raise
                errors.append(exc.detail)
        if errors:
            raise _Failure(_aggregate(errors))
        return payload

    async def _token(
        self, ctx: _Context, source: Mapping[str, Any], volume: str
    ) -> tuple[str, str]:
        """(path, token) of a projected ``serviceAccountToken`` source: a token bound to
        the pod from the token manager (Kubernetes' projected volume plugin)."""
        if self.tokens is None:
            raise _Failure(
                "projected serviceAccountToken sources are not supported yet by this "
                "kubelet: it has no API client to request tokens with",
                retryable=False,
            )
        path = str(source.get("path") or "")
        audience = str(source.get("audience") or "")
        seconds = source.get("expirationSeconds")
        try:
            token = await self.tokens.token(
                dict(ctx.pod),
                volume,
                path,
                audiences=[audience] if audience else [],
                expiration_seconds=int(seconds) if seconds is not None else 3600,
            )
        except TokenError as exc:
            raise _Failure(exc.message, retryable=exc.retryable) from exc
        return path, token

    async def _claim_plan(self, ctx: _Context, volume: Mapping[str, Any], kind: str) -> _HostPlan:
        name = str(volume.get("name") or "")
        pod_meta = ctx.pod.get("metadata") or {}
        if kind == "ephemeral":
            claim_name = f"{pod_meta.get('name')}-{name}"
        else:
            claim_name = str(volume[kind].get("claimName") or "")
        prefix = f"Unable to attach or mount volumes: unmounted volumes=[{name}]: "

        def fail(detail: str) -> _Failure:
            return _Failure(
                f"error processing PVC {ctx.namespace}/{claim_name}: {detail}", prefix=prefix
            )

        try:
            pvc = await self._get("persistentvolumeclaims", ctx.namespace, claim_name)
        except _Failure as exc:
            raise fail(f"failed to fetch PVC from API server: {exc.detail}") from exc
        if pvc is None:
            raise fail(
                "failed to fetch PVC from API server: "
                f'persistentvolumeclaims "{claim_name}" not found'
            )
        pvc_meta = pvc.get("metadata") or {}
        if kind == "ephemeral":
            owners = [o for o in pvc_meta.get("ownerReferences") or [] if o.get("controller")]
            if not owners or owners[0].get("uid") != pod_meta.get("uid"):
                raise fail(
                    f"PVC {ctx.namespace}/{claim_name} was not created for pod "
                    f"{ctx.namespace}/{pod_meta.get('name')} (pod is not owner)"
                )
        if pvc_meta.get("deletionTimestamp"):
            raise fail("PVC is being deleted")
        if (pvc.get("status") or {}).get("phase") != "Bound":
            raise fail("PVC is not bound")
        pv_name = str((pvc.get("spec") or {}).get("volumeName") or "")
        if not pv_name:
            raise fail("PVC has empty pvc.Spec.VolumeName")
        try:
            pv = await self._get("persistentvolumes", "", pv_name)
        except _Failure as exc:
            raise fail(f"failed to fetch PV {pv_name} from API server: {exc.detail}") from exc
        if pv is None:
            raise fail(
                f"failed to fetch PV {pv_name} from API server: "
                f'persistentvolumes "{pv_name}" not found'
            )
        pv_spec = pv.get("spec") or {}
        claim_ref = pv_spec.get("claimRef")
        if not claim_ref:
            raise fail(
                f"found PV object {pv_name} but it has a nil pv.Spec.ClaimRef indicating "
                "it is not yet bound to the claim"
            )
        if claim_ref.get("uid") != pvc_meta.get("uid"):
            raise fail(
                f"found PV object {pv_name} but its pv.Spec.ClaimRef.UID "
                f"({claim_ref.get('uid')}) does not point to claim.UID ({pvc_meta.get('uid')})"
            )
        if pv_spec.get("hostPath") is not None:
            host = pv_spec["hostPath"]
            return _HostPlan(
                name,
                pv_name,
                str(host.get("path") or ""),
                str(host.get("type") or ""),
                claim=True,
            )
        if pv_spec.get("local") is not None:
            return _HostPlan(
                name, pv_name, str(pv_spec["local"].get("path") or ""), "", local=True, claim=True
            )
        known = {"capacity", "accessModes", "claimRef", "persistentVolumeReclaimPolicy"}
        known |= {"storageClassName", "mountOptions", "volumeMode", "nodeAffinity"}
        kinds = [k for k in pv_spec if k not in known and pv_spec[k] is not None]
        raise _Failure(
            f'persistent volume type "{kinds[0] if kinds else "?"}" of PV {pv_name} is not '
            "supported by the built-in kubelet (supported: hostPath, local)",
            retryable=False,
        )

    # --- on the host (blocking; run in a thread) ------------------------------------
    def _apply(self, uid: str, plan: _Plan, fs_group: int | None) -> bool:
        if isinstance(plan, _HostPlan):
            _check_host_path(plan.path, plan.type, local=plan.local, event_name=plan.event_name)
            if plan.claim:
                link = self.root / uid / "volumes" / CLAIM / plan.name
                self._make_parents(link.parent)
                if not link.is_symlink() or str(link.readlink()) != plan.path:
                    tmp = link.with_name(f".{plan.name}.tmp")
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                    tmp.symlink_to(plan.path)
                    tmp.rename(link)
            return False
        if isinstance(plan, _DirPlan):
            directory, created = self._volume_dir(uid, EMPTY_DIR, plan.name, plan.memory)
            if created and fs_group is not None:
                _set_ownership(directory, fs_group, read_only=False, recursive=False)
            return created
        target, created = self._volume_dir(uid, plan.plugin, plan.name, plan.memory)
        if created and fs_group is not None:
            _set_ownership(target, fs_group, read_only=True, recursive=False)
        set_perms = None
        if fs_group is not None:

            def set_perms(ts_dir: Path) -> None:
                _set_ownership(ts_dir, fs_group, read_only=True, recursive=True)

        try:
            wrote = AtomicWriter(target).write(plan.payload, set_perms)
        except ValueError as exc:
            raise _Failure(str(exc), retryable=False) from exc
        return wrote or created

    def _make_parents(self, directory: Path) -> None:
        # The pod's directories are the kubelet's own (0750, as makePodDataDirs makes them).
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                d.mkdir(mode=0o750)

    def _memory_ok(self) -> bool:
        if self._memory_is_tmpfs is None:
            self._memory_is_tmpfs = is_tmpfs(self.memory_root)
        return self._memory_is_tmpfs

    def _volume_dir(self, uid: str, plugin: str, name: str, memory: bool) -> tuple[Path, bool]:
        """The volume's directory (created 0777 — 1777 on tmpfs — when missing) and
        whether it was created now."""
        path = self.root / uid / "volumes" / plugin / name
        if path.is_symlink():
            real = Path(os.path.realpath(path))
            if real.is_dir():
                return real, False
        elif path.is_dir():
            return path, False
        if memory and plugin == EMPTY_DIR and not self._memory_ok():
            raise _Failure(
                f'emptyDir medium "Memory" needs a tmpfs, and {self.memory_root} is not on '
                "one: mount a tmpfs there (or at /dev/shm) or use the default medium",
                retryable=False,
            )
        self._make_parents(path.parent)
        if memory and self._memory_ok():
            real = self.memory_root / uid / "volumes" / plugin / name
            self._make_parents(real.parent)
            real.mkdir(exist_ok=True)
            real.chmod(0o1777)  # the mode of a tmpfs root, as the kubelet's tmpfs mounts have
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            path.symlink_to(real)
            return real, True
        if path.is_symlink():  # dangling: its memory-backed target is gone
            path.unlink()
        path.mkdir(exist_ok=True)
        path.chmod(0o777)
        return path, True

    def _host_path(self, uid: str, volume: Mapping[str, Any], kind: str) -> Path | None:
        name = str(volume.get("name") or "")
        if kind == "hostPath":
            return Path(str(volume[kind].get("path") or ""))
        plugin = _PLUGIN_DIRS.get(kind)
        if plugin is None:
            return None
        path = self.root / uid / "volumes" / plugin / name
        if not os.path.lexists(path):
            return None
        return Path(os.path.realpath(path)) if path.is_symlink() else path

    def _remove_pod(self, uid: str) -> None:
        if not uid or "/" in uid or uid in (".", ".."):
            raise VolumeError(f"refusing to remove the volumes of pod uid {uid!r}")
        for base in (self.root, self.memory_root):
            pod_dir = base / uid
            if pod_dir.is_symlink():
                pod_dir.unlink()
            elif pod_dir.exists():
                # rmtree removes symlinks (to PV data, to memory volumes) without following.
                _remove_tree(pod_dir)


def _remove_tree(path: Path) -> None:
    """Remove a directory tree without following symlinks (they may point at PV data or
    memory-backed volumes). A container may have left directories without write
    permission (e.g. 0555); the kubelet owns the volume, so it may change that."""
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        pass

    def writable(directory: Path) -> None:
        with contextlib.suppress(OSError):
            st = directory.lstat()
            if stat.S_ISDIR(st.st_mode):  # never through a symlink
                directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IRWXU)

    writable(path)
    for dirpath, dirnames, _filenames in os.walk(path):  # top-down: children before listing
        for name in dirnames:
            writable(Path(dirpath) / name)
    shutil.rmtree(path)


def _uid(pod: Mapping[str, Any]) -> str:
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    if not uid or "/" in uid or uid in (".", ".."):
        raise VolumeError(f"pod has no usable metadata.uid ({uid!r})", retryable=False)
    return uid


def _set_ownership(path: Path, gid: int, *, read_only: bool, recursive: bool) -> None:
    """Kubernetes' ``SetVolumeOwnership`` for a pod with an ``fsGroup``: group-own every
    file and let the group read (and, for writable volumes, write) it."""
    mask = _RO_MASK if read_only else _RW_MASK
    paths = [path]
    if recursive:
        for dirpath, dirnames, filenames in os.walk(path):
            paths.extend(Path(dirpath) / n for n in [*dirnames, *filenames])
    for p in paths:
        os.lchown(p, -1, gid)
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        extra = mask | (stat.S_ISGID | _EXEC_MASK if stat.S_ISDIR(st.st_mode) else 0)
        p.chmod(stat.S_IMODE(st.st_mode) | extra)


def _check_host_path(path: str, kind: str, *, local: bool = False, event_name: str = "") -> None:
    """Kubernetes' hostPath type checks (and creation for the *OrCreate types)."""
    if ".." in path.split("/"):
        raise _Failure(f"invalid HostPath `{path}`: must not contain '..'", retryable=False)
    p = Path(path)
    if local:
        if not p.exists():
            raise _Failure(
                f'path "{path}" does not exist',
                prefix=(
                    f'MountVolume.NewMounter initialization failed for volume "{event_name}" : '
                ),
            )
        return
    match kind:
        case "":
            # Nothing is checked. A missing path becomes a directory, as containerd's CRI
            # creates it (podman would refuse the mount and docker would do the same).
            if not p.exists() and not p.is_symlink():
                p.mkdir(mode=0o755, parents=True, exist_ok=True)
        case "DirectoryOrCreate" | "Directory":
            if kind == "DirectoryOrCreate" and not p.exists():
                p.mkdir(mode=0o755, parents=True, exist_ok=True)
                return
            if not p.is_dir():
                raise _Failure(f"hostPath type check failed: {path} is not a directory")
        case "FileOrCreate" | "File":
            if kind == "FileOrCreate" and not p.exists():
                # As Kubernetes: an empty 0644 file; the parent directory must exist.
                fd = os.open(p, os.O_CREAT | os.O_RDONLY, 0o644)
                os.close(fd)
                return
            if not p.is_file():
                raise _Failure(f"hostPath type check failed: {path} is not a file")
        case "Socket" | "CharDevice" | "BlockDevice":
            test, what = {
                "Socket": (stat.S_ISSOCK, "a socket file"),
                "CharDevice": (stat.S_ISCHR, "a character device"),
                "BlockDevice": (stat.S_ISBLK, "a block device"),
            }[kind]
            try:
                ok = test(p.stat().st_mode)
            except OSError:
                ok = False
            if not ok:
                raise _Failure(f"hostPath type check failed: {path} is not {what}")
        case _:
            raise _Failure(f"{kind} is an invalid volume type", retryable=False)


def _expand_sub_path(expr: str, env: Mapping[str, str]) -> str:
    """``subPathExpr`` expanded from the container's environment; a reference to a
    missing or empty variable is an error, as in Kubernetes."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        value = env.get(name, "")
        if not value:
            missing.add(name)
        return value

    expanded = expand_with(expr, lookup)
    if missing:
        raise ContainerConfigError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def _prepare_sub_path(volume_path: Path, sub: str, volume: str, container: str) -> Path:
    """The host path to bind for ``subPath``: created (as a directory with the volume's
    mode) when missing, symlinks resolved, and never outside the volume."""
    if sub.startswith("/"):
        raise ContainerConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    base = Path(os.path.realpath(volume_path))
    host = volume_path / sub
    try:
        if not os.path.lexists(host):
            mode = stat.S_IMODE(base.stat().st_mode)
            current = base
            for part in Path(sub).parts:
                current = current / part
                if os.path.lexists(current):
                    current = Path(os.path.realpath(current))
                    if not _inside(current, base):
                        raise OSError(errno.EXDEV, "subPath escapes the volume")
                    continue
                current.mkdir()
                current.chmod(mode)
        resolved = Path(os.path.realpath(host))
    except OSError as exc:
        raise ContainerConfigError(
            f'failed to prepare subPath for volumeMount "{volume}" of container "{container}"'
        ) from exc
    if not _inside(resolved, base) or not resolved.exists():
        raise ContainerConfigError(
            f'failed to prepare subPath for volumeMount "{volume}" of container "{container}"'
        )
    return resolved


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def is_tmpfs(path: Path) -> bool:
    """Whether ``path`` (or, when it does not exist yet, its nearest existing parent)
    is on a tmpfs, from ``/proc/self/mountinfo``."""
    probe = Path(os.path.realpath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    best, fstype = "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    text = str(probe)
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mount_point = _unescape_mountinfo(fields[4])
        inside = text == mount_point or text.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, right.split()[0]
    return fstype == "tmpfs"


def _unescape_mountinfo(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
