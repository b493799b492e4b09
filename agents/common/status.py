"""What an agent writes back on its ConfigMaps (never into ``data``), and finalizers.

- label ``kairn.dev/state``: Ready | Error | Pending
- annotation ``kairn.dev/status``: JSON ``{"state", "reason", "message", "specHash", "time",
  ...extra}``
- a Kubernetes Event (``Normal`` for Ready/Pending, ``Warning`` for Error) on every change of
  state, and when an Error's message changes.

:class:`StatusReporter` skips writes that would change nothing but the time, so resyncs cost
no API writes; its writes run in a small thread pool (``report_many``). Objects are the plain
dicts of the informer's cache (the API's JSON).

Finalizers: :func:`has_finalizer`, :func:`add_finalizer`, :func:`remove_finalizer` (JSON
patches guarded by a ``test`` op, retried on conflict; removing one from an object that is
already gone is a success).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from kubernetes import client

from .keys import join_key, split_key
from .logs import get_logger

STATE_LABEL = "kairn.dev/state"
STATUS_ANNOTATION = "kairn.dev/status"
MANAGED = "kairn.dev/managed"
READY, ERROR, PENDING = "Ready", "Error", "Pending"
MAX_MESSAGE = 1000

log = get_logger("kairn.status")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def labels(obj: dict) -> dict:
    return meta(obj).get("labels") or {}


def annotations(obj: dict) -> dict:
    return meta(obj).get("annotations") or {}


def status_of(obj: dict) -> dict:
    """The parsed ``kairn.dev/status`` annotation ({} when absent or unreadable)."""
    raw = annotations(obj).get(STATUS_ANNOTATION)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def paused(obj: dict) -> bool:
    """``kairn.dev/managed: "false"`` as a label or an annotation pauses a resource."""
    for source in (labels(obj), annotations(obj)):
        if str(source.get(MANAGED, "")).strip().lower() == "false":
            return True
    return False


def _comparable(status: dict) -> dict:
    return {k: v for k, v in status.items() if k != "time"}


class StatusReporter:
    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str,
        component: str,
        workers: int = 8,
        instance: str | None = None,
        on_written=None,
    ):
        """``namespace``: the agent's own (the home of bare keys); each status and Event is
        written in its object's namespace. ``on_written(obj)`` receives each object as the
        API server returned it after a status write (e.g. ``Informer.update_cached``), so the
        next reconcile sees it."""
        self.core, self.namespace, self.component = core, namespace, component
        self.on_written = on_written
        self.instance = instance or component
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="status")
        self._written: dict[str, dict] = {}  # key -> last status written by this process
        self.states: dict[str, str] = {}  # key -> state, for the kairn_resources gauge

    def key(self, obj: dict) -> str:
        return join_key(meta(obj).get("namespace"), meta(obj)["name"], self.namespace)

    def forget(self, key: str) -> None:
        self._written.pop(key, None)
        self.states.pop(key, None)

    def forget_namespace(self, namespace: str) -> None:
        """Forgets every resource of ``namespace`` (no longer watched)."""
        for key in [k for k in self.states if split_key(k, self.namespace)[0] == namespace]:
            self.forget(key)

    def counts(self) -> dict[tuple[str, str], int]:
        """(namespace, state) -> resources."""
        out: dict[tuple[str, str], int] = {}
        for key, s in self.states.items():
            ns = split_key(key, self.namespace)[0] or self.namespace
            out[ns, s] = out.get((ns, s), 0) + 1
        return out

    def report(
        self,
        obj: dict,
        state: str,
        reason: str,
        message: str,
        spec_hash: str | None = None,
        extra: dict | None = None,
    ) -> bool:
        """Writes the status of ``obj`` unless it already says the same; returns whether it
        wrote. An Event is created when the state (or an Error's message) changes."""
        name, key = meta(obj)["name"], self.key(obj)
        namespace = meta(obj).get("namespace") or self.namespace
        message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        new = {
            "state": state,
            "reason": reason,
            "message": message,
            "specHash": spec_hash,
            **(extra or {}),
        }
        self.states[key] = state
        previous = self._written.get(key) or status_of(obj)
        if _comparable(previous) == new and labels(obj).get(STATE_LABEL) == state:
            self._written[key] = previous
            return False
        new["time"] = now_iso()
        body = {
            "metadata": {
                "labels": {STATE_LABEL: state},
                "annotations": {STATUS_ANNOTATION: json.dumps(new)},
            }
        }
        try:
            resp = self.core.patch_namespaced_config_map(
                name, namespace, body, _preload_content=False
            )
            written = json.loads(resp.data)  # (read even when unused: frees the connection)
            if self.on_written is not None:
                self.on_written(written)
        except client.ApiException as e:
            if e.status == 404:
                self.forget(key)
                return False
            raise
        self._written[key] = new
        changed = previous.get("state") != state or (
            state == ERROR and previous.get("message") != message
        )
        if changed:
            self.event(obj, reason, message, warning=state == ERROR)
        return True

    def report_many(self, items: list[tuple]) -> list[BaseException]:
        """``report(*item)`` for each item, in parallel; returns the errors (already logged)."""
        return [e for e in self.report_each(items) if e is not None]

    def report_each(self, items: list[tuple]) -> list[BaseException | None]:
        """``report(*item)`` for each item, in parallel; the error of each item, in order
        (None where the write succeeded; errors are logged)."""
        futures = [self._pool.submit(self.report, *item) for item in items]
        errors: list[BaseException | None] = []
        for item, f in zip(items, futures, strict=True):
            e = f.exception()
            if e is not None:
                log.warning("status write failed", name=meta(item[0]).get("name"), error=repr(e))
            errors.append(e)
        return errors

    def event(self, obj: dict, reason: str, message: str, warning: bool = False) -> None:
        """Creates a Kubernetes Event about ``obj`` (failures are logged, not raised)."""
        m = meta(obj)
        namespace = m.get("namespace") or self.namespace
        ts = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = {
            "metadata": {"generateName": f"{m['name']}.", "namespace": namespace},
            "involvedObject": {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "name": m["name"],
                "namespace": namespace,
                "uid": m.get("uid"),
                "resourceVersion": m.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "type": "Warning" if warning else "Normal",
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": f"kairn.dev/{self.component}",
            "reportingInstance": self.instance,
        }
        try:
            resp = self.core.create_namespaced_event(namespace, body, _preload_content=False)
            # read to the end: only then does the connection go back to the pool (a response
            # left unread keeps it, and the next request pays for a new TLS handshake)
            resp.drain_conn()
        except Exception as e:
            log.warning("event not recorded", name=m["name"], reason=reason, error=repr(e))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# ---- finalizers ----------------------------------------------------------------------------
def has_finalizer(obj: dict, finalizer: str) -> bool:
    return finalizer in (meta(obj).get("finalizers") or [])


def _json_patch(core: client.CoreV1Api, name: str, namespace: str, ops: list) -> dict:
    resp = core.patch_namespaced_config_map(name, namespace, ops, _preload_content=False)
    return json.loads(resp.data)


def _get(core: client.CoreV1Api, name: str, namespace: str) -> dict:
    resp = core.read_namespaced_config_map(name, namespace, _preload_content=False)
    return json.loads(resp.data)


def add_finalizer(core: client.CoreV1Api, obj: dict, finalizer: str, attempts: int = 5) -> dict:
    """Adds ``finalizer`` to the ConfigMap ``obj``; returns the updated object."""
    namespace = meta(obj)["namespace"]
    for _ in range(attempts):
        current = meta(obj).get("finalizers")
        if current and finalizer in current:
            return obj
        if current:
            ops = [
                {"op": "test", "path": "/metadata/finalizers", "value": current},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]
        else:
            ops = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": meta(obj)["resourceVersion"],
                },
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ]
        try:
            return _json_patch(core, meta(obj)["name"], namespace, ops)
        except client.ApiException as e:
            if e.status not in (409, 422):
                raise
            obj = _get(core, meta(obj)["name"], namespace)
    raise RuntimeError(f"could not add finalizer {finalizer} to {meta(obj)['name']}")


def remove_finalizer(
    core: client.CoreV1Api, obj: dict, finalizer: str, attempts: int = 5
) -> dict | None:
    """Removes ``finalizer`` from the ConfigMap ``obj``; returns the updated object, or None
    when the object is gone (which counts as done)."""
    namespace = meta(obj)["namespace"]
    for _ in range(attempts):
        current = meta(obj).get("finalizers") or []
        if finalizer not in current:
            return obj
        i = current.index(finalizer)
        ops = [
            {"op": "test", "path": f"/metadata/finalizers/{i}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{i}"},
        ]
        try:
            return _json_patch(core, meta(obj)["name"], namespace, ops)
        except client.ApiException as e:
            if e.status == 404:
                return None
            if e.status not in (409, 422):
                raise
            try:
                obj = _get(core, meta(obj)["name"], namespace)
            except client.ApiException as e2:
                if e2.status == 404:
                    return None
                raise
    raise RuntimeError(f"could not remove finalizer {finalizer} from {meta(obj)['name']}")
