"""Informers: a local, read-only cache of one resource kept current by list+watch, with
event handlers and secondary indexes — client-go's shared informer, in asyncio.

Who calls it: controllers, the scheduler and kubelets. Handlers receive the cached
objects, which are shared and must not be mutated; handlers typically only enqueue keys
on a :class:`~kubeclient.workqueue.WorkQueue`. The informer relists when the watch's
revision has expired (410) and resumes the watch from its last revision otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog

from kubeclient.rest import Client, KubeError

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], Iterable[str]]


class ObjectSource(Protocol):
    """The read side of an informer that wiring functions need: the cached objects and
    the handler registration (an :class:`Informer`, or a test's stand-in)."""

    def items(self) -> list[Obj]: ...

    def on(
        self,
        add: AddHandler | None = None,
        update: UpdateHandler | None = None,
        delete: DeleteHandler | None = None,
    ) -> None: ...


def key_of(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name) of a key; namespace is "" for cluster-scoped keys."""
    ns, _, name = key.rpartition("/")
    return ns, name


class Informer:
    def __init__(
        self,
        client: Client,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._cache: dict[str, Obj] = {}
        self._adds: list[AddHandler] = []
        self._updates: list[UpdateHandler] = []
        self._deletes: list[DeleteHandler] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}

    # --- registration -----------------------------------------------------------
    def on(
        self,
        add: AddHandler | None = None,
        update: UpdateHandler | None = None,
        delete: DeleteHandler | None = None,
    ) -> None:
        if add:
            self._adds.append(add)
        if update:
            self._updates.append(update)
        if delete:
            self._deletes.append(delete)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._cache.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    # --- reads --------------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def items(self) -> list[Obj]:
        return list(self._cache.values())

    def keys(self) -> list[str]:
        return list(self._cache)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indexes.get(name, {}).get(value, ())
        return [self._cache[k] for k in keys if k in self._cache]

    # --- cache maintenance --------------------------------------------------------
    def _index(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self._index_funcs.items():
            index = self._indexes[name]
            if old is not None:
                for value in func(old):
                    keys = index.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del index[value]
            if new is not None:
                for value in func(new):
                    index.setdefault(value, set()).add(key)

    def _apply(self, kind: str, obj: Obj) -> None:
        key = key_of(obj)
        old = self._cache.get(key)
        if kind == "DELETED":
            if old is None:
                return
            del self._cache[key]
            self._index(key, old, None)
            for handler in self._deletes:
                handler(obj)
            return
        self._cache[key] = obj
        self._index(key, old, obj)
        if old is None:
            for add in self._adds:
                add(obj)
        else:
            for update in self._updates:
                update(old, obj)

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
        for key in [k for k in self._cache if k not in fresh]:
            self._apply("DELETED", self._cache[key])
        for obj in items:
            old = self._cache.get(key_of(obj))
            if old is None or (old.get("metadata") or {}).get("resourceVersion") != (
                obj.get("metadata") or {}
            ).get("resourceVersion"):
                self._apply("MODIFIED" if old else "ADDED", obj)

    # --- the loop -------------------------------------------------------------------
    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    async def _list(self) -> None:
        result = await self.client.list(
            self.api_version, self.plural, self.namespace, **self._params()
        )
        items = result.get("items") or []
        kind = str(result.get("kind", "")).removesuffix("List")
        for item in items:  # list items carry no kind/apiVersion in real clusters
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", self.api_version)
        self._replace(items)
        self.resource_version = str((result.get("metadata") or {}).get("resourceVersion", ""))
        self.synced.set()

    async def run(self) -> None:
        """List, then watch forever (until cancelled), relisting when needed."""
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                need_list = await self._watch()
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.status == 410:
                    need_list = True
                    continue
                log.debug("informer.retry", resource=self.plural, error=str(exc))
                await asyncio.sleep(self.retry_delay)
            except Exception as exc:  # keep the cache alive through unexpected errors
                log.warning("informer.error", resource=self.plural, error=repr(exc))
                await asyncio.sleep(self.retry_delay)

    async def _watch(self) -> bool:
        """Follow the watch; True when the cache must be relisted (410)."""
        params = self._params()
        params.update(
            {
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.watch_timeout),
            }
        )
        async for event in self.client.watch(
            self.api_version, self.plural, self.namespace, **params
        ):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return True
                raise KubeError(
                    int(obj.get("code") or 500),
                    str(obj.get("reason", "")),
                    str(obj.get("message", "")),
                    obj,
                )
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if kind == "BOOKMARK":
                continue
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(str(kind), obj)
        return False


async def wait_synced(*informers: Informer, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        for informer in informers:
            await informer.synced.wait()


@contextlib.asynccontextmanager
async def running(*informers: Informer) -> Any:
    """Run informers for the duration of a block (cancelled on exit)."""
    tasks = [asyncio.create_task(i.run()) for i in informers]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
