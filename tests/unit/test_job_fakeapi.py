"""An in-memory stand-in for the API server used by the Job and CronJob controller unit
tests: writes are kept, numbered and fed to the controllers' informers as watch events
would be, so ``sync`` runs its real code path against a controlled clock."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from pathlib import Path
from typing import Any, cast

from kubeclient.factory import InformerFactory
from kubeclient.rest import Client, KubeError
from runtime.controllers.manager import ControllerContext

Obj = dict[str, Any]


class FakeApi:
    def __init__(self, now: dt.datetime | None = None) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.rv = itertools.count(1)
        self.uids = itertools.count(1)
        self.factory: InformerFactory | None = None
        self.now = now or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self.deleted: list[tuple[str, str]] = []

    def context(self, tmp: Path, **settings: str) -> ControllerContext:
        self.factory = InformerFactory(cast(Client, self))
        return ControllerContext(
            client=cast(Client, self),
            informers=self.factory,
            state_dir=tmp,
            settings=dict(settings),
        )

    def _feed(self, api_version: str, plural: str, kind: str, obj: Obj) -> None:
        if self.factory is not None:
            self.factory.informer(api_version, plural)._apply(kind, copy.deepcopy(obj))

    def put(self, api_version: str, plural: str, obj: Obj) -> Obj:
        """Store an object as if created (uid, resourceVersion, creationTimestamp)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{next(self.uids)}")
        meta.setdefault("creationTimestamp", self.now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = str(next(self.rv))
        self.objects[(plural, meta["namespace"], meta["name"])] = obj
        self._feed(api_version, plural, "ADDED", obj)
        return copy.deepcopy(obj)

    def all(self, plural: str) -> list[Obj]:
        return [copy.deepcopy(o) for (p, _, _), o in self.objects.items() if p == plural]

    # --- the Client surface the controllers use ------------------------------------------
    async def get(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        found = self.objects.get((plural, namespace or "default", name))
        if found is None:
            raise KubeError(404, "NotFound", f"{plural} {name} not found")
        return copy.deepcopy(found)

    async def create(
        self, api_version: str, plural: str, body: Obj, namespace: str | None = None, **_: str
    ) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace or "default"
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'x-')}{next(self.uids):05d}"
        if (plural, meta["namespace"], meta["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", f"{meta['name']} already exists")
        return self.put(api_version, plural, obj)

    async def replace(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
        **_: str,
    ) -> Obj:
        key = (plural, namespace or "default", name)
        current = self.objects.get(key)
        if current is None:
            raise KubeError(404, "NotFound", name)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified")
        new = copy.deepcopy(current)
        if subresource == "status":
            new["status"] = copy.deepcopy(body.get("status") or {})
        else:
            new = copy.deepcopy(body)
        new["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[key] = new
        self._feed(api_version, plural, "MODIFIED", new)
        return copy.deepcopy(new)

    async def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: Any,
        namespace: str | None = None,
        subresource: str | None = None,
        content_type: str = "",
        **_: str,
    ) -> Obj:
        key = (plural, namespace or "default", name)
        current = self.objects.get(key)
        if current is None:
            raise KubeError(404, "NotFound", name)
        new = copy.deepcopy(current)
        if isinstance(body, list):  # the JSON patches the Job controller sends
            for op in body:
                parts = op["path"].strip("/").split("/")
                target = new
                for part in parts[:-1]:
                    target = target[part]
                last = int(parts[-1])
                if op["op"] == "test" and target[last] != op["value"]:
                    raise KubeError(422, "Invalid", "test operation failed")
                if op["op"] == "remove":
                    del target[last]
        else:
            _merge(new, body)
        new["metadata"]["resourceVersion"] = str(next(self.rv))
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]
            self._feed(api_version, plural, "DELETED", new)
        else:
            self.objects[key] = new
            self._feed(api_version, plural, "MODIFIED", new)
        return copy.deepcopy(new)

    async def delete(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        body: Obj | None = None,
        **_: str,
    ) -> Any:
        key = (plural, namespace or "default", name)
        current = self.objects.get(key)
        if current is None:
            raise KubeError(404, "NotFound", name)
        self.deleted.append((plural, name))
        if current["metadata"].get("finalizers"):
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
            new["metadata"]["resourceVersion"] = str(next(self.rv))
            self.objects[key] = new
            self._feed(api_version, plural, "MODIFIED", new)
            return copy.deepcopy(new)
        del self.objects[key]
        self._feed(api_version, plural, "DELETED", current)
        return {"kind": "Status", "status": "Success"}


def _merge(target: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def events(ctx: ControllerContext) -> list[tuple[str, str]]:
    """(reason, message) of every event recorded so far (drained)."""
    out: list[tuple[str, str]] = []
    for recorder in ctx.recorders:
        q = recorder._q()
        while not q.empty():
            item = q.get_nowait()
            out.append((item["reason"], item["message"]))
    return out
