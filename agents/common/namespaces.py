"""One kind of object watched in several namespaces: one :class:`Informer` per namespace,
behind the read interface of a single one.

The agent's own namespace (``home``) is always watched; tenant namespaces come and go with
:meth:`NamespacedInformers.set_namespaces`. Each namespace has its own list and watch, so the
agents need a Role in each namespace and never a ClusterRole. Keys are the objects' names in
``home`` and ``namespace/name`` elsewhere (:mod:`.keys`).

A namespace that is removed stops being watched and its objects leave the cache without
passing through the handler as deletions: nothing is done to what they declared (the
caller is told how many there were, to say so). Readiness (``synced``) is the home
namespace's: a tenant namespace whose Role is missing retries on its own, without holding the
agent back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from .informer import Informer
from .keys import split_key
from .logs import get_logger

MakeInformer = Callable[[str], Informer]  # namespace -> an informer of it (not yet running)


class NamespacedInformers:
    def __init__(self, home: str, make: MakeInformer, name: str = "informer"):
        self.home, self._make = home, make
        self.log = get_logger(f"kairn.{name}")
        self._lock = threading.RLock()
        self._informers: dict[str, Informer] = {home: make(home)}
        self._threads: dict[str, threading.Thread] = {}
        self._indexers: dict[str, Callable[[dict], list[str]]] = {}
        self._running = False
        self.synced = self._informers[home].synced

    # ---- which namespaces -----------------------------------------------------------------
    def namespaces(self) -> list[str]:
        with self._lock:
            return list(self._informers)

    def set_namespaces(self, namespaces: Iterable[str]) -> dict[str, int]:
        """Watches ``home`` and ``namespaces``; stops watching the others. Returns, for each
        namespace no longer watched, how many objects its cache held."""
        wanted = {self.home, *namespaces}
        with self._lock:
            gone = [ns for ns in self._informers if ns not in wanted]
            added = [ns for ns in sorted(wanted) if ns not in self._informers]
            removed = [(ns, self._informers.pop(ns), self._threads.pop(ns, None)) for ns in gone]
            for ns in added:
                informer = self._make(ns)
                for index, fn in self._indexers.items():
                    informer.add_index(index, fn)
                self._informers[ns] = informer
                if self._running:
                    self._start(ns)
        # stopped outside the lock: a handler still running on that thread may read the cache
        left = {}
        for ns, informer, thread in removed:
            informer.stop()
            if thread is not None:
                thread.join(timeout=10)
            left[ns] = len(informer.drop())
        if added or gone:
            self.log.info("namespaces watched", added=added, removed=gone)
        return left

    def _start(self, namespace: str) -> None:
        t = threading.Thread(
            target=self._informers[namespace].run, name=f"informer-{namespace}", daemon=True
        )
        self._threads[namespace] = t
        t.start()

    def _of(self, key: str) -> Informer | None:
        namespace = split_key(key, self.home)[0]
        with self._lock:
            return self._informers.get(namespace or self.home)

    def _all(self) -> list[Informer]:
        with self._lock:
            return list(self._informers.values())

    # ---- the cache, as one informer's --------------------------------------------------------
    def get(self, key: str) -> dict | None:
        informer = self._of(key)
        return informer.get(key) if informer is not None else None

    def keys(self) -> list[str]:
        return [k for i in self._all() for k in i.keys()]  # noqa: SIM118 (an Informer's keys)

    def items(self) -> list[dict]:
        return [o for i in self._all() for o in i.items()]

    def __len__(self) -> int:
        return sum(len(i) for i in self._all())

    def key_of(self, obj: dict) -> str:
        return self._informers[self.home].key_of(obj)

    def add_index(self, name: str, fn: Callable[[dict], list[str]]) -> None:
        with self._lock:
            self._indexers[name] = fn
            for informer in self._informers.values():
                informer.add_index(name, fn)

    def by_index(self, name: str, value: str) -> list[dict]:
        return [o for i in self._all() for o in i.by_index(name, value)]

    def update_cached(self, obj: dict) -> None:
        informer = self._of(self.key_of(obj))
        if informer is not None:
            informer.update_cached(obj)

    changed = staticmethod(Informer.changed)

    # ---- lifecycle --------------------------------------------------------------------------
    def run(self) -> None:
        """Runs every informer (and those added later) until :meth:`stop`."""
        with self._lock:
            self._running = True
            for ns in self._informers:
                self._start(ns)
            home = self._threads[self.home]
        home.join()

    def stop(self) -> None:
        with self._lock:
            self._running = False
            informers, threads = list(self._informers.values()), list(self._threads.values())
        for i in informers:
            i.stop()
        for t in threads:
            t.join(timeout=10)
