"""The common front of a batch reconcile: how each key is sorted, what handlers get, and how
status writes end (a recording reporter stands in for the API server)."""

from __future__ import annotations

import json

import pytest

from agents.common import status as st
from agents.common.front import Batch, Entry, Front
from agents.common.spec_base import SpecError, raw_hash

FINALIZER = "kairn.dev/thing"


class Spec:
    def __init__(self, name):
        self.name, self.hash = name, f"h-{name}"


def parse(obj) -> Spec | SpecError:
    text = (obj.get("data") or {}).get("spec")
    return SpecError("InvalidYAML", "not YAML") if text == "bad" else Spec(obj["metadata"]["name"])


def cm(name, spec="ok", status=None, **meta) -> dict:
    m = {"name": name, "namespace": meta.pop("namespace", "home"), "uid": f"u-{name}", **meta}
    if status is not None:
        m.setdefault("annotations", {})[st.STATUS_ANNOTATION] = json.dumps(status)
    return {"metadata": m, "data": {"spec": spec}}


class Reporter:
    """Records status writes; writes for the names in ``failing`` fail."""

    def __init__(self, failing=()):
        self.failing, self.written, self.forgotten = set(failing), {}, []

    def report_each(self, items):
        out = []
        for obj, state, reason, message, spec_hash, extra in items:
            name = obj["metadata"]["name"]
            if name in self.failing:
                out.append(RuntimeError("API server said no"))
            else:
                self.written[name] = (state, reason, message, spec_hash, extra)
                out.append(None)
        return out

    def forget(self, name):
        self.forgotten.append(name)


class Core:
    """The finalizer patch of the API server: returns the object without the finalizer."""

    def __init__(self, objs):
        self.objs, self.patched = objs, []

    def patch_namespaced_config_map(self, name, namespace, ops, _preload_content=False):
        self.patched.append((namespace, name))
        obj = json.loads(json.dumps(self.objs[name]))
        obj["metadata"]["finalizers"] = []

        class Resp:
            data = json.dumps(obj).encode()

        return Resp()


def front_for(objs: dict, reporter=None, **kw) -> Front:
    return Front(
        noun="thing",
        finalizer=FINALIZER,
        spec_of=parse,
        get=objs.get,
        reporter=reporter or Reporter(),
        core=Core({k.rpartition("/")[2]: v for k, v in objs.items()}),
        home="home",
        **kw,
    )


def test_each_key_is_sorted_once():
    objs = {
        "deleted-free": cm("deleted-free", deletionTimestamp="t"),
        "deleted-held": cm("deleted-held", deletionTimestamp="t", finalizers=[FINALIZER]),
        "paused": cm("paused", labels={st.MANAGED: "false"}),
        "bad": cm("bad", spec="bad"),
        "refused": cm("refused"),
        "fine": cm("fine"),
    }
    reporter = Reporter()
    front = front_for(objs, reporter)
    seen: dict[str, list[Entry]] = {}

    def sync(entries, batch):
        seen["sync"] = entries
        for e in entries:
            batch.report(e, st.READY, "ThingReady", "ok")

    out = front.reconcile(
        ["gone", *objs],
        sync=sync,
        delete=lambda entries, batch: seen.setdefault("delete", entries),
        refuse=lambda e: ("Refused", "no") if e.name == "refused" else None,
    )
    assert [e.key for e in seen["sync"]] == ["fine"]
    assert [e.key for e in seen["delete"]] == ["deleted-held"]
    assert reporter.forgotten == ["gone"]
    assert {k: o.result for k, o in out.items()} == {
        "gone": "ready",
        "deleted-free": "ready",
        "paused": "pending",
        "bad": "error",
        "refused": "error",
        "fine": "ready",
    }  # deleted-held: the delete handler decides (here it did not: the controller's ready)
    assert reporter.written["paused"][:3] == (
        st.PENDING,
        "ReconciliationPaused",
        'kairn.dev/managed is "false": the thing is left as it is',
    )
    assert reporter.written["bad"][:4] == (st.ERROR, "InvalidYAML", "not YAML", raw_hash("bad"))
    assert reporter.written["refused"][:4] == (st.ERROR, "Refused", "no", "h-refused")
    assert reporter.written["fine"][0] == st.READY


def test_kept_status_keys_are_carried_on_unless_set_again():
    objs = {"a": cm("a", status={"username": "a", "secret": "a", "other": 1})}
    reporter = Reporter()
    front = front_for(objs, reporter, keep_status=("username", "secret"))

    def sync(entries, batch):
        batch.report(entries[0], st.READY, "Ready", "ok", {"secret": None})

    front.reconcile(["a"], sync=sync, delete=lambda *_: None)
    assert reporter.written["a"][4] == {"username": "a", "secret": None}


def test_a_status_that_could_not_be_written_is_retried_whatever_its_state():
    objs = {n: cm(n) for n in ("ok", "lost-ready", "lost-error")}
    objs["lost-error"]["data"]["spec"] = "bad"
    front = front_for(objs, Reporter(failing={"lost-ready", "lost-error"}))

    def sync(entries, batch):
        for e in entries:
            batch.report(e, st.READY, "Ready", "ok")

    out = front.reconcile(list(objs), sync=sync, delete=lambda *_: None)
    assert {k: o.result for k, o in out.items()} == {
        "ok": "ready",
        "lost-ready": "retry",
        "lost-error": "retry",
    }


def test_statuses_can_be_flushed_as_the_work_goes():
    reporter = Reporter(failing={"b"})
    batch = Batch(reporter)
    batch.report_obj("a", cm("a"), st.READY, "Ready", "ok", "h")
    assert batch.flush() == set() and "a" in reporter.written
    batch.report_obj("b", cm("b"), st.ERROR, "Bad", "no", "h")
    assert batch.flush() == {"b"} and batch.out["b"].result == "retry"
    assert batch.flush() == set()


def test_namespaced_keys_carry_their_namespace():
    objs = {"tenant/a": cm("a", namespace="tenant"), "b": cm("b")}
    got = {}

    def sync(entries, batch):
        got.update({e.key: (e.namespace, e.name) for e in entries})

    front_for(objs).reconcile(["tenant/a", "b"], sync=sync, delete=lambda *_: None)
    assert got == {"tenant/a": ("tenant", "a"), "b": ("home", "b")}


@pytest.mark.parametrize("cleanup_fails", [False, True])
def test_release_ends_a_deletion_or_retries_it(cleanup_fails):
    obj = cm("a", deletionTimestamp="t", finalizers=[FINALIZER])
    reporter = Reporter()
    front = front_for({"a": obj}, reporter)
    released = []

    def cleanup():
        if cleanup_fails:
            raise RuntimeError("Secret not deleted")

    def delete(entries, batch):
        released.append(front.release(batch, entries[0], cleanup))

    out = front.reconcile(["a"], sync=lambda *_: None, delete=delete)
    assert released == [not cleanup_fails]
    if cleanup_fails:
        assert out["a"].result == "retry" and front.core.patched == []
        assert reporter.forgotten == []
    else:
        assert out["a"].result == "ready" and front.core.patched == [("home", "a")]
        assert reporter.forgotten == ["a"]
