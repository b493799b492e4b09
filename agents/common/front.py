"""The front of a batch reconcile, the same for every kind of resource.

For each key of the batch :meth:`Front.reconcile` decides what every agent decides the same
way, then hands the rest to the kind's handlers:

- the ConfigMap is gone: its status is forgotten, the key is done;
- it is being deleted: with the kind's finalizer it goes to ``delete``, without it is done;
- ``kairn.dev/managed: "false"``: ``Pending`` (``ReconciliationPaused``), nothing else;
- its spec does not parse: ``Error`` with the parser's reason and message;
- ``refuse(entry)`` (optional) gives a (reason, message): ``Error`` before any request;
- everything else goes to ``sync``.

Handlers record what they decided on the :class:`Batch` (``batch.report(entry, ...)``,
``batch.retry(key)``); :meth:`Front.release` ends a deletion (clean-up, the finalizer off,
the status forgotten). Then every status is written through the StatusReporter
(``report_each``), and a key whose status could not be written is retried (an Error or a
Ready nobody can see is no answer). An exception from a handler retries the whole batch
(the controller's rule: Kafka or the API server could not be reached).

Keys may be ``namespace/name`` (see :mod:`.keys`); an :class:`Entry` carries both parts.

How the topic agent uses it::

    self.front = Front(
        noun="topic", finalizer=FINALIZER, spec_of=spec_of, get=get, reporter=reporter,
        core=core, keep_status=("topicName", "configKeys"), home=namespace, log=log,
    )

    def reconcile(self, keys):
        return self.front.reconcile(keys, refuse=self._conflict, delete=self._delete,
                                    sync=self._sync)

    def _conflict(self, e: Entry) -> tuple[str, str] | None:
        owner = self.owner_of(e.spec.name)          # TopicConflict, TopicNameChanged
        ...

    def _delete(self, entries: list[Entry], batch: Batch) -> None:
        ...                                          # DeleteTopics for the entries it owns
        for e in entries:
            if e.key in failed:
                batch.retry(e.key)
            else:
                self.front.release(batch, e)

    def _sync(self, entries: list[Entry], batch: Batch) -> None:
        ...                                          # finalizers, describe, diff, apply
        batch.report(e, READY, "TopicReady", message, extra)   # or batch.report_obj(key, obj, ...)
        batch.flush()                                # optional: write what is decided so far
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import status as st
from .controller import Outcome
from .keys import split_key
from .logs import Logger, get_logger
from .spec_base import SpecError, raw_hash, raw_spec
from .status import ERROR, PENDING, READY, StatusReporter

RESULT_OF_STATE = {READY: "ready", ERROR: "error", PENDING: "pending"}


@dataclass
class Entry:
    """One resource of the batch that a handler gets."""

    key: str
    namespace: str | None
    name: str
    obj: dict  # the ConfigMap (a handler may replace it, e.g. after adding a finalizer)
    spec: Any  # the parsed spec; a deletion's may be a SpecError
    prev: dict  # the status annotation it carries

    @property
    def paused(self) -> bool:
        return st.paused(self.obj)


class Batch:
    """The outcomes and the statuses of one batch. Statuses are collected and written
    together by :meth:`flush` (the front flushes at the end; a handler may flush sooner, e.g.
    after each chunk of work, so people see states change as the work goes); a key whose
    status write failed is retried."""

    def __init__(self, reporter: StatusReporter, keep_status: tuple[str, ...] = ()):
        self.reporter, self.keep_status = reporter, keep_status
        self.out: dict[str, Outcome] = {}
        self._pending: list[tuple[str, tuple]] = []  # (key, StatusReporter.report arguments)

    def report_obj(
        self,
        key: str,
        obj: dict,
        state: str,
        reason: str,
        message: str,
        spec_hash: str | None,
        extra: dict | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """A status to write for ``obj``, and the outcome of ``key`` (the state's, unless
        ``outcome`` is given). The previous status's ``keep_status`` keys are carried on
        unless ``extra`` sets them."""
        prev = st.status_of(obj)
        keep = {k: prev[k] for k in self.keep_status if k in prev}
        self._pending.append(
            (key, (obj, state, reason, message, spec_hash, {**keep, **(extra or {})}))
        )
        self.out[key] = outcome or Outcome(RESULT_OF_STATE[state])

    def report(self, it, state, reason, message, extra=None, outcome=None) -> None:
        """:meth:`report_obj` for an entry (anything with ``key``, ``obj`` and ``spec``)."""
        self.report_obj(it.key, it.obj, state, reason, message, it.spec.hash, extra, outcome)

    def retry(self, key: str) -> None:
        """Retry ``key`` with backoff (its status is left as it is)."""
        self.out[key] = Outcome("retry")

    def done(self, key: str) -> None:
        self.out[key] = Outcome("ready")

    def flush(self) -> set[str]:
        """Writes the collected statuses; returns the keys whose write failed (retried)."""
        pending, self._pending = self._pending, []
        if not pending:
            return set()
        errors = self.reporter.report_each([args for _, args in pending])
        failed = {key for (key, _), e in zip(pending, errors, strict=True) if e is not None}
        for key in failed:
            self.retry(key)
        return failed


Handler = Callable[[list[Entry], Batch], None]


def oldest_claim(claimants: list[dict]) -> dict:
    """Of ConfigMaps that claim the same Kafka name, the one that owns it: the oldest (then by
    namespace and name, so every agent and every resync picks the same one)."""

    def age(obj: dict) -> tuple[str, str, str]:
        m = st.meta(obj)
        return (m.get("creationTimestamp") or "", m.get("namespace") or "", m["name"])

    return min(claimants, key=age)


class Front:
    def __init__(
        self,
        *,
        noun: str,
        finalizer: str,
        spec_of: Callable[[dict], Any],
        get: Callable[[str], dict | None],
        reporter: StatusReporter,
        core,
        keep_status: tuple[str, ...] = (),
        home: str | None = None,
        log: Logger | None = None,
    ):
        """``noun``: what a resource is ("topic", "user"), for the paused message;
        ``spec_of(obj)``: the parsed spec or a SpecError (e.g. :func:`spec_base.spec_reader`);
        ``get(key)``: the cached object; ``keep_status``: status keys every report carries
        on; ``home``: the namespace of bare-name keys."""
        self.noun, self.finalizer, self.spec_of, self.get = noun, finalizer, spec_of, get
        self.reporter, self.core, self.keep_status, self.home = reporter, core, keep_status, home
        self.log = log or get_logger("kairn.front")

    def reconcile(
        self,
        keys: list[str],
        *,
        sync: Handler,
        delete: Handler,
        refuse: Callable[[Entry], tuple[str, str] | None] | None = None,
    ) -> dict[str, Outcome]:
        batch = Batch(self.reporter, self.keep_status)
        live, deleting = self.sort(keys, batch, refuse)
        if deleting:
            delete(deleting, batch)
        if live:
            sync(live, batch)
        batch.flush()
        return batch.out

    def sort(self, keys: list[str], batch: Batch, refuse=None) -> tuple[list[Entry], list[Entry]]:
        """(entries to sync, entries being deleted); every other key gets its outcome (and its
        status) on ``batch`` here."""
        live: list[Entry] = []
        deleting: list[Entry] = []
        for key in keys:
            namespace, name = split_key(key, self.home)
            obj = self.get(key)
            if obj is None:
                self.reporter.forget(key)
                batch.done(key)
                continue
            entry = Entry(key, namespace, name, obj, self.spec_of(obj), st.status_of(obj))
            if st.meta(obj).get("deletionTimestamp"):
                if st.has_finalizer(obj, self.finalizer):
                    deleting.append(entry)
                else:
                    batch.done(key)
                continue
            if entry.paused:
                batch.report_obj(
                    key,
                    obj,
                    PENDING,
                    "ReconciliationPaused",
                    f'kairn.dev/managed is "false": the {self.noun} is left as it is',
                    raw_hash(raw_spec(obj)),
                )
                continue
            if isinstance(entry.spec, SpecError):
                error, text_hash = entry.spec, raw_hash(raw_spec(obj))
                batch.report_obj(key, obj, ERROR, error.reason, error.message, text_hash)
                continue
            refusal = refuse(entry) if refuse is not None else None
            if refusal is not None:
                batch.report(entry, ERROR, *refusal)
                continue
            live.append(entry)
        return live, deleting

    def release(
        self, batch: Batch, entry: Entry, cleanup: Callable[[], None] | None = None
    ) -> bool:
        """Ends the deletion of ``entry``: ``cleanup()`` (what the resource owns outside
        Kafka), then the finalizer off and the status forgotten. A failure retries the key;
        returns whether it is done."""
        try:
            if cleanup is not None:
                cleanup()
            st.remove_finalizer(self.core, entry.obj, self.finalizer)
        except Exception as e:
            self.log.warning("deletion not finished", name=entry.key, error=repr(e))
            batch.retry(entry.key)
            return False
        self.reporter.forget(entry.key)
        batch.done(entry.key)
        return True
