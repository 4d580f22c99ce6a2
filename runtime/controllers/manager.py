"""The controller manager: builds the cluster's controllers, shares their informers, and
runs them — kube-controller-manager's role in the built-in cluster.

Each controller lives in its own module under :mod:`runtime.controllers` and is a class
built from a :class:`ControllerContext`:

- ``__init__(self, ctx)`` asks ``ctx.informers`` for the informers it needs and registers
  its handlers and indexes (handlers only enqueue keys on the controller's work queue);
- ``async def run(self)`` waits for ``ctx.informers.wait_synced()`` and processes keys
  (``kubeclient.workqueue.run_workers``) until cancelled.

The manager builds every enabled controller first, then starts the shared informers
once, then runs the controllers and their event recorders. :data:`CONTROLLERS` names them
(``gitops cluster up --controllers`` picks a subset, as kube-controller-manager's
``--controllers`` does). Per-controller settings come as ``--controller-option
name.key=value`` strings and are read with :meth:`ControllerContext.setting`, so a
controller's tunables (and tests' shortened periods) need no new CLI flags.

Who calls it: :mod:`runtime.cluster`, and tests that run one controller in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from kubeclient.events import EventRecorder
from kubeclient.factory import InformerFactory
from kubeclient.rest import Client

log = structlog.get_logger(__name__)

#: Every controller of the built-in cluster: name -> "module:Class".
CONTROLLERS: dict[str, str] = {
    "replicaset": "runtime.controllers.replicaset:ReplicaSetController",
    "replicationcontroller": "runtime.controllers.replicaset:ReplicationControllerController",
    "deployment": "runtime.controllers.deployment:DeploymentController",
    "statefulset": "runtime.controllers.statefulset:StatefulSetController",
    "daemonset": "runtime.controllers.daemonset:DaemonSetController",
    "job": "runtime.controllers.job:JobController",
    "cronjob": "runtime.controllers.cronjob:CronJobController",
    "horizontalpodautoscaling": "runtime.controllers.hpa:HorizontalPodAutoscalerController",
    "garbagecollector": "runtime.controllers.garbagecollector:GarbageCollector",
    "namespace": "runtime.controllers.namespace:NamespaceController",
    "serviceaccount": "runtime.controllers.serviceaccount:ServiceAccountController",
    "root-ca-cert-publisher": "runtime.controllers.rootcacertpublisher:RootCACertPublisher",
    "endpoints": "runtime.controllers.endpoints:EndpointsController",
    "endpointslice": "runtime.controllers.endpointslice:EndpointSliceController",
    "persistentvolume-binder": "runtime.controllers.volumebinder:PersistentVolumeBinder",
    "persistentvolume-provisioner": "runtime.controllers.provisioner:LocalPathProvisioner",
    "podgc": "runtime.controllers.podgc:PodGarbageCollector",
    "clusterrole-aggregation": "runtime.controllers.clusterroleaggregation:ClusterRoleAggregationController",
}


class ControllerError(Exception):
    """A controller list or setting that cannot be used (not retryable)."""

    retryable = False


class Controller(Protocol):
    async def run(self) -> None: ...


_T = TypeVar("_T", str, int, float, bool)


@dataclass
class ControllerContext:
    """What every controller is built from."""

    client: Client
    informers: InformerFactory
    #: Where controllers may keep files (the local-path provisioner's volumes).
    state_dir: Path
    #: "controller.key" -> value, from ``--controller-option``.
    settings: Mapping[str, str] = field(default_factory=dict)
    recorders: list[EventRecorder] = field(default_factory=list)
    #: The cluster CA certificate (PEM) the root-ca-cert-publisher publishes.
    ca_pem: bytes = b""

    def recorder(self, component: str) -> EventRecorder:
        """An event recorder reporting as ``component`` (run by the manager)."""
        recorder = EventRecorder(self.client, component)
        self.recorders.append(recorder)
        return recorder

    def setting(self, key: str, default: _T) -> _T:
        """A controller setting, converted to the type of ``default``."""
        raw = self.settings.get(key)
        if raw is None:
            return default
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                return raw.lower() in ("true", "1")
            return type(default)(raw)
        except ValueError:
            kind = type(default).__name__
            raise ControllerError(f"--controller-option {key}={raw}: expected a {kind}") from None


def parse_settings(items: Iterable[str]) -> dict[str, str]:
    """``["job.backoff-base=1", …]`` -> ``{"job.backoff-base": "1", …}``; checks the
    controller named before the dot exists."""
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name = key.partition(".")[0]
        if not sep or "." not in key:
            raise ControllerError(f"--controller-option {item!r}: expected controller.key=value")
        if name not in CONTROLLERS:
            raise ControllerError(
                f"--controller-option {item!r}: no controller {name!r} "
                f"(controllers: {', '.join(CONTROLLERS)})"
            )
        settings[key] = value
    return settings


def built(name: str) -> bool:
    """Whether the controller's module exists in this installation."""
    return importlib.util.find_spec(CONTROLLERS[name].partition(":")[0]) is not None


def enabled_controllers(spec: str) -> list[str]:
    """The controllers a ``--controllers`` value enables: ``*`` (every built one),
    ``none``, or a comma-separated list where ``*`` means all and ``-name`` removes one."""
    spec = spec.strip()
    if spec in ("", "none"):
        return []
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part == "*":
            chosen += [n for n in CONTROLLERS if n not in chosen and built(n)]
        elif part.startswith("-"):
            name = part[1:]
            if name not in CONTROLLERS:
                raise ControllerError(f"--controllers: no controller {name!r}")
            chosen = [n for n in chosen if n != name]
        elif part in CONTROLLERS:
            if not built(part):
                raise ControllerError(f"--controllers: controller {part!r} is not built yet")
            if part not in chosen:
                chosen.append(part)
        else:
            raise ControllerError(
                f"--controllers: no controller {part!r} (controllers: {', '.join(CONTROLLERS)})"
            )
    return chosen


def build(name: str, ctx: ControllerContext) -> Controller:
    module_name, _, class_name = CONTROLLERS[name].partition(":")
    module = importlib.import_module(module_name)
    controller: Controller = getattr(module, class_name)(ctx)
    return controller


class ControllerManager:
    """Runs the named controllers against one API server until cancelled."""

    def __init__(self, ctx: ControllerContext, names: Iterable[str]) -> None:
        self.ctx = ctx
        self.names = list(names)
        self.controllers: dict[str, Controller] = {name: build(name, ctx) for name in self.names}

    async def run(self) -> None:
        self.ctx.informers.start()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(r.run(), name="event-recorder") for r in self.ctx.recorders
        ]
        tasks += [
            asyncio.create_task(self._run_one(name, c), name=name)
            for name, c in self.controllers.items()
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.ctx.informers.stop()

    async def _run_one(self, name: str, controller: Controller) -> None:
        """Run a controller; if it crashes, log it and start it again after a pause (a
        bug in one controller must not stop the others)."""
        while True:
            try:
                await controller.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("controller.crashed", controller=name, error=repr(exc))
                await asyncio.sleep(5.0)
