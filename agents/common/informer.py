"""List + watch of one kind of kairn ConfigMap into a local cache (client-go's reflector and
informer, for ConfigMaps in one namespace).

- Lists (paginated) with the label selector ``kairn.dev/cluster=<release>,kairn.dev/type=<type>``
  and replaces the cache; then watches from the list's resourceVersion with
  ``allowWatchBookmarks``, a server ``timeout_seconds`` and a longer client-side
  ``_request_timeout`` (a half-open connection cannot hang it).
- When a watch ends it resumes from the last resourceVersion seen (bookmarks included);
  410 Gone (history compacted) triggers a fresh list; other errors back off exponentially.
  Every restart counts in ``kairn_watch_restarts_total``.
- Objects are plain dicts (the API's JSON): no model deserialization, so 10,000 ConfigMaps
  list quickly and take little memory.
- ``handler(key, old, new)`` is called for each change (old or new is None for add/delete)
  after the cache is updated; after a (re)list it is called for every key whose object
  changed or vanished, and ``on_synced()`` after the first list.
- ``fingerprint(obj)`` is what a reconcile depends on: data, labels and annotations except the
  status the agents write, the deletion timestamp. :meth:`changed` compares it, so an agent can
  ignore the updates it caused itself.
- Indexes (``add_index(name, fn)``, ``by_index(name, value)``) like client-go's indexers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable

from kubernetes import client, watch

from .keys import join_key
from .logs import get_logger
from .metrics import Metrics
from .status import STATE_LABEL, STATUS_ANNOTATION

Handler = Callable[[str, dict | None, dict | None], None]


def key_of(obj: dict, home: str | None = None) -> str:
    """The cache key of an object: its name when it is in ``home`` (or has no namespace),
    ``namespace/name`` otherwise (see :mod:`.keys`)."""
    m = obj["metadata"]
    return join_key(m.get("namespace"), m["name"], home)


def fingerprint(obj: dict | None) -> str | None:
    """A hash of what a reconcile depends on, leaving out what agents write back
    (the state label, the status annotation, finalizers, resourceVersion)."""
    if obj is None:
        return None
    m = obj.get("metadata") or {}
    lbl = {k: v for k, v in (m.get("labels") or {}).items() if k != STATE_LABEL}
    ann = {k: v for k, v in (m.get("annotations") or {}).items() if k != STATUS_ANNOTATION}
    relevant = [
        obj.get("data"),
        obj.get("binaryData"),
        lbl,
        ann,
        m.get("deletionTimestamp"),
        m.get("uid"),
    ]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


class _RawWatch(watch.Watch):
    """``watch.Watch`` that keeps objects as dicts (no model deserialization) and still
    tracks the resourceVersion, bookmarks included."""

    def unmarshal_event(self, data, return_type):
        if not data or data.isspace():
            return None
        try:
            js = json.loads(data)
        except ValueError:
            return None
        js["raw_object"] = js.get("object")
        obj = js["raw_object"]
        if js.get("type") != "ERROR" and isinstance(obj, dict):
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
        return js


class Informer:
    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str,
        label_selector: str,
        handler: Handler,
        metrics: Metrics | None = None,
        on_synced: Callable[[], None] | None = None,
        watch_timeout: int = 240,
        page_size: int = 500,
        max_backoff: float = 30.0,
        name: str = "informer",
        list_fn: Callable | None = None,
        home: str | None = None,
    ):
        """``list_fn``: the list call to list and watch with (default
        ``core.list_namespaced_config_map``; e.g. ``core.list_namespaced_secret``); ``home``:
        the namespace whose objects have bare-name keys (default ``namespace``)."""
        self.core, self.namespace, self.selector = core, namespace, label_selector
        self.home = home or namespace
        self._list_fn = list_fn
        self.handler, self.metrics, self.on_synced = handler, metrics, on_synced
        self.watch_timeout, self.page_size, self.max_backoff = watch_timeout, page_size, max_backoff
        self.log = get_logger(f"kairn.{name}")
        self._lock = threading.RLock()
        self._store: dict[str, dict] = {}
        self._indexers: dict[str, Callable[[dict], list[str]]] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._stop = threading.Event()
        self._watch: _RawWatch | None = None
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.heartbeat = time.monotonic()
        self.lists = 0

    def key_of(self, obj: dict) -> str:
        return key_of(obj, self.home)

    def _lister(self) -> Callable:
        return self._list_fn or self.core.list_namespaced_config_map

    # ---- cache ----------------------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._store.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._store)

    def items(self) -> list[dict]:
        with self._lock:
            return list(self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def add_index(self, name: str, fn: Callable[[dict], list[str]]) -> None:
        """``fn(obj)`` gives the index values of an object; add before ``run``."""
        with self._lock:
            self._indexers[name] = fn
            self._indices[name] = {}
            for k, obj in self._store.items():
                self._index_add(name, k, obj)

    def by_index(self, name: str, value: str) -> list[dict]:
        with self._lock:
            return [self._store[k] for k in self._indices[name].get(value, ()) if k in self._store]

    def _index_add(self, name: str, key: str, obj: dict) -> None:
        try:
            values = self._indexers[name](obj)
        except Exception:
            values = []
        for v in values:
            self._indices[name].setdefault(v, set()).add(key)

    def _index_remove(self, name: str, key: str, obj: dict) -> None:
        try:
            values = self._indexers[name](obj)
        except Exception:
            values = []
        for v in values:
            keys = self._indices[name].get(v)
            if keys:
                keys.discard(key)
                if not keys:
                    del self._indices[name][v]

    def _put(self, key: str, obj: dict | None) -> dict | None:
        with self._lock:
            old = self._store.get(key)
            for n in self._indexers:
                if old is not None:
                    self._index_remove(n, key, old)
                if obj is not None:
                    self._index_add(n, key, obj)
            if obj is None:
                self._store.pop(key, None)
            else:
                self._store[key] = obj
            return old

    def update_cached(self, obj: dict) -> None:
        """Puts an object the agent just wrote (newer than the cache's) into the cache, so the
        next reconcile sees it; older versions arriving later from the watch are skipped by
        resourceVersion. The handler is called only when the object differs from the cached
        one in more than what agents write (someone else changed it in between), so that
        change is not lost with the skipped watch event."""
        key = self.key_of(obj)
        with self._lock:
            old = self._store.get(key)
            if old is not None and _rv(old) >= _rv(obj):
                return
            self._put(key, obj)
        if old is not None and self.changed(old, obj):
            self.handler(key, old, obj)

    @staticmethod
    def changed(old: dict | None, new: dict | None) -> bool:
        return fingerprint(old) != fingerprint(new)

    # ---- list and watch -------------------------------------------------------------------
    def list(self) -> None:
        """Lists every matching object, replaces the cache and calls the handler for each
        object that is new, changed or gone."""
        items, cont, rv = [], None, None
        while True:
            kw = {
                "label_selector": self.selector,
                "limit": self.page_size,
                "_request_timeout": (10, 60),
            }
            if cont:
                kw["_continue"] = cont
            resp = self._lister()(self.namespace, _preload_content=False, **kw)
            page = json.loads(resp.data)
            md = page.get("metadata") or {}
            rv = rv or md.get("resourceVersion")
            items.extend(page.get("items") or [])
            cont = md.get("continue")
            if not cont:
                break
        fresh = {self.key_of(o): o for o in items}
        with self._lock:
            gone = [k for k in self._store if k not in fresh]
        changes = []
        for k in gone:
            changes.append((k, self._put(k, None), None))
        for k, o in fresh.items():
            old = self._put(k, o)
            changes.append((k, old, o))
        self.resource_version = rv
        self.lists += 1
        self.heartbeat = time.monotonic()
        self.log.info("listed", objects=len(fresh), resource_version=rv)
        for k, old, new in changes:
            self.handler(k, old, new)
        if not self.synced.is_set():
            self.synced.set()
            if self.on_synced:
                self.on_synced()

    def _watch_once(self) -> None:
        w = _RawWatch()
        self._watch = w
        stream = w.stream(
            self._lister(),
            self.namespace,
            label_selector=self.selector,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=(10, self.watch_timeout + 30),
        )
        for ev in stream:
            self.heartbeat = time.monotonic()
            typ, obj = ev.get("type"), ev.get("raw_object")
            if typ == "BOOKMARK":
                rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                continue
            if not isinstance(obj, dict) or "metadata" not in obj:
                continue
            key = self.key_of(obj)
            self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
            if typ == "DELETED":
                old = self._put(key, None)
                self.handler(key, old, None)
            elif typ in ("ADDED", "MODIFIED"):
                with self._lock:
                    cached = self._store.get(key)
                if cached is not None and _rv(cached) > _rv(obj):
                    continue  # the agent already cached a newer version it wrote itself
                old = self._put(key, obj)
                self.handler(key, old, obj)
            if self._stop.is_set():
                w.stop()

    def run(self) -> None:
        """Lists, then watches until :meth:`stop`; never raises."""
        failures = 0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self.list()
                    need_list = False
                self._watch_once()
                failures = 0
            except client.ApiException as e:
                if e.status == 410:
                    self.log.info("watch expired (410 Gone), listing again")
                    need_list = True
                    failures = 0
                else:
                    failures += 1
                    self.log.warning("watch failed", status=e.status, reason=str(e.reason))
            except Exception as e:
                if self._stop.is_set():
                    break
                failures += 1
                self.log.warning("watch failed", error=repr(e))
            if self._stop.is_set():
                break
            if self.metrics:
                self.metrics.watch_restarted()
            if failures:
                delay = min(self.max_backoff, 0.5 * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                self._stop.wait(delay)

    def drop(self) -> list[tuple[str, dict]]:
        """Empties the cache without calling the handler; returns what it held (for an
        informer that stops for good)."""
        with self._lock:
            held = list(self._store.items())
            for key, _ in held:
                self._put(key, None)
        return held

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()
            resp = getattr(w, "_resp", None)
            if resp is not None:
                with contextlib.suppress(Exception):
                    resp.close()


def _rv(obj: dict) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return 0
