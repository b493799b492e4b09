"""The user agent's Secrets: every read and write of a Secret goes through :class:`SecretStore`.

- :meth:`SecretStore.read_many`: the users' Secrets and the referenced password Secrets. Up
  to ``get_limit`` of a namespace are read one by one (in parallel), more are listed page by
  page; a Secret that cannot be read is reported per name, so only its user waits.
- :meth:`SecretStore.clients_ca`: the clients CA, loaded once per change of its Secrets.
- :meth:`SecretStore.write` (create or replace, as field manager ``kairn-user-agent``) and
  :meth:`SecretStore.delete` (a Secret already gone counts as deleted).
- :meth:`SecretStore.wrote`: whether a Secret seen by the watch is this agent's own write
  coming back (so it does not queue its user again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from agents.common.spec_base import spec_hash

from . import credentials as cred
from .plan import Refused, clients_ca_material

GET_LIMIT = 20  # up to this many Secrets of a namespace are read one by one; above, listed
PAGE = 500

Ref = tuple[str, str]  # (namespace, name)


def _digest(secret: dict) -> str:
    m = secret.get("metadata") or {}
    return spec_hash([secret.get("data") or {}, m.get("labels") or {}, m.get("annotations") or {}])


class SecretStore:
    def __init__(
        self,
        core: client.CoreV1Api,
        pool: ThreadPoolExecutor,
        ca_secrets: Ref | None = None,
        ca_key_secrets: Ref | None = None,
        get_limit: int = GET_LIMIT,
    ):
        """``ca_secrets``/``ca_key_secrets``: where the clients CA's ``ca.crt`` and ``ca.key``
        are; ``pool`` runs reads and writes in parallel."""
        self.core, self.pool, self.get_limit = core, pool, get_limit
        self.ca_cert, self.ca_key = ca_secrets, ca_key_secrets
        self._ca: tuple[tuple[bytes, bytes], cred.ClientsCa] | None = None
        self._written: dict[Ref, str] = {}  # digest of what this agent last wrote

    # ---- reading --------------------------------------------------------------------------
    def read(self, ref: Ref) -> dict | None:
        """The Secret (None when it does not exist); other API errors raise."""
        try:
            resp = self.core.read_namespaced_secret(ref[1], ref[0], _preload_content=False)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(resp.data)

    def _list(self, namespace: str, wanted: set[str]) -> dict[str, dict]:
        found, cont = {}, None
        while True:
            kw = {"limit": PAGE, "_request_timeout": (10, 60)}
            if cont:
                kw["_continue"] = cont
            resp = self.core.list_namespaced_secret(namespace, _preload_content=False, **kw)
            page = json.loads(resp.data)
            for s in page.get("items") or []:
                if s["metadata"]["name"] in wanted:
                    found[s["metadata"]["name"]] = s
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return found

    def read_many(self, refs: Iterable[Ref]) -> tuple[dict[Ref, dict | None], dict[Ref, str]]:
        """(Secret or None by ref, why by ref for those that could not be read). A failed
        list of a namespace fails each of its refs."""
        refs = sorted(set(refs))
        by_ns: dict[str, list[str]] = {}
        for ns, name in refs:
            by_ns.setdefault(ns, []).append(name)
        found: dict[Ref, dict | None] = {}
        failed: dict[Ref, str] = {}
        singles = [
            (ns, n) for ns, names in by_ns.items() if len(names) <= self.get_limit for n in names
        ]
        futures = {ref: self.pool.submit(self.read, ref) for ref in singles}
        for ns, names in by_ns.items():
            if len(names) > self.get_limit:
                try:
                    listed = self._list(ns, set(names))
                except Exception as e:
                    failed.update({(ns, n): f"Secrets of {ns} not listed: {e!r}" for n in names})
                    continue
                found.update({(ns, n): listed.get(n) for n in names})
        for ref, f in futures.items():
            e = f.exception()
            if e is None:
                found[ref] = f.result()
            else:
                failed[ref] = f"Secret {ref[1]} not read: {e!r}"
        return found, failed

    def clients_ca(self) -> cred.ClientsCa | Refused:
        """The clients CA, or why it cannot be used (missing or unreadable Secrets: the
        users that need it wait). API errors raise."""
        names = (self.ca_cert[1], self.ca_key[1])
        material = clients_ca_material(self.read(self.ca_cert), self.read(self.ca_key), names)
        if isinstance(material, Refused):
            return material
        if self._ca is None or self._ca[0] != material:
            try:
                self._ca = (material, cred.ClientsCa.load(*material))
            except Exception as e:
                return Refused(
                    "ClientsCaInvalid",
                    f"the clients CA in Secrets {names[0]} and {names[1]} cannot be read: {e}",
                )
        return self._ca[1]

    # ---- writing --------------------------------------------------------------------------
    def write(self, body: dict, replace: bool) -> dict:
        """Creates (or, with ``replace``, replaces) the Secret ``body``; returns it as stored.
        A 409 (someone wrote it meanwhile) raises like any other API error."""
        m = body["metadata"]
        ref = (m["namespace"], m["name"])
        # noted before the write: its watch event may come back before the answer does
        self._written[ref] = _digest(body)
        if replace:
            resp = self.core.replace_namespaced_secret(
                ref[1], ref[0], body, field_manager=cred.FIELD_MANAGER, _preload_content=False
            )
        else:
            resp = self.core.create_namespaced_secret(
                ref[0], body, field_manager=cred.FIELD_MANAGER, _preload_content=False
            )
        stored = json.loads(resp.data)
        self._written[ref] = _digest(stored)
        return stored

    def delete(self, ref: Ref) -> None:
        """Deletes the Secret; one already gone counts as deleted."""
        try:
            self.core.delete_namespaced_secret(ref[1], ref[0], _preload_content=False).drain_conn()
        except client.ApiException as e:
            if e.status != 404:
                raise
        self._written.pop(ref, None)

    def delete_owned(self, ref: Ref, owner_uid: str | None) -> bool:
        """Deletes the Secret if the ConfigMap with ``owner_uid`` owns it; whether it did."""
        if not cred.owned_by(self.read(ref), owner_uid):
            return False
        self.delete(ref)
        return True

    def wrote(self, secret: dict) -> bool:
        """Whether ``secret`` is as this agent last wrote it (its own write coming back)."""
        m = secret.get("metadata") or {}
        return self._written.get((m.get("namespace"), m.get("name"))) == _digest(secret)
