"""Work-queue keys of the agents' resources, read in one place.

The informer makes a key of each object (:func:`agents.common.informer.key_of`). Today every
resource lives in the agent's own namespace and a key is the object's bare name. A key may
also be ``namespace/name`` (a resource in another namespace, for tenants): everything that
needs the parts of a key calls :func:`split_key`, so such keys work wherever they appear.
Kubernetes names never contain ``/``, so the split is unambiguous.
"""

from __future__ import annotations


def split_key(key: str, home: str | None = None) -> tuple[str | None, str]:
    """(namespace, name) of a key; a bare name is in ``home`` (the agent's namespace)."""
    namespace, sep, name = key.rpartition("/")
    return (namespace if sep else home), name


def name_of(key: str) -> str:
    """The object name part of a key."""
    return key.rpartition("/")[2]


def join_key(namespace: str | None, name: str, home: str | None = None) -> str:
    """The key of ``namespace/name``: the bare name when it is in ``home`` (or unknown)."""
    return name if namespace in (None, home) else f"{namespace}/{name}"
