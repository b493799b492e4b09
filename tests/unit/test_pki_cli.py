"""The kairn-certs command (directory mode) and the Secret stores."""

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes.client import V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from agents.pki import cli, issue
from agents.pki.model import Secret
from agents.pki.store import Conflict, DirSecretStore, KubeSecretStore, MemorySecretStore

ROOT = Path(__file__).resolve().parents[2]


def certs(tmp_path, *args):
    """Run the command in-process on a directory; returns its exit code."""
    return cli.main(["--fullname", "kairn", "--out-dir", str(tmp_path), *args])


def records(capsys):
    lines = capsys.readouterr().err.splitlines()
    return [json.loads(x) for x in lines if x.startswith("{")], lines


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kairn-certs"] == "agents.pki.cli:main"


def test_help_names_flags_and_environment():
    out = subprocess.run(
        [sys.executable, "-m", "agents.pki.cli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0
    for word in ("--out-dir", "--replace-ca", "KAIRN_FULLNAME", "KAIRN_CERT_RENEWAL_DAYS"):
        assert word in out.stdout


def test_out_dir_run_is_idempotent_and_logs_no_secrets(tmp_path, capsys):
    assert certs(tmp_path) == 0
    recs, lines = records(capsys)
    assert len(recs) == len(lines) and recs[-1]["msg"] == "done"
    files = snapshot(tmp_path)
    assert tmp_path / "kairn-kafka-brokers" / "kairn-kafka-2.p12" in files
    key = tmp_path / "kairn-cluster-ca" / "ca.key"
    assert key.stat().st_mode & 0o077 == 0
    # Neither a key nor a password shows up in the log.
    secret_values = [v for p, v in files.items() if p.suffix in (".key", ".password")]
    log = "\n".join(lines)
    assert "PRIVATE KEY" not in log
    assert not any(v.decode() in log for v in secret_values if b"PRIVATE" not in v)
    assert certs(tmp_path) == 0
    assert records(capsys)[0][-1]["written"] == []
    assert snapshot(tmp_path) == files


def test_environment_and_clock_show_a_renewal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KAIRN_KAFKA_REPLICAS", "1")
    monkeypatch.setenv("KAIRN_ZOOKEEPER_REPLICAS", "1")
    assert certs(tmp_path, "--now", "2026-01-01T00:00:00Z") == 0
    assert sorted(os.listdir(tmp_path / "kairn-kafka-brokers")) == [
        ".meta.json", "kairn-kafka-0.crt", "kairn-kafka-0.key", "kairn-kafka-0.p12",
        "kairn-kafka-0.password",
    ]  # fmt: skip
    first = (tmp_path / "kairn-kafka-brokers" / "kairn-kafka-0.crt").read_bytes()
    capsys.readouterr()
    assert certs(tmp_path, "--now", "2026-12-10T00:00:00Z") == 0
    recs, _ = records(capsys)
    assert any(r.get("reason") == "expires in 22 days" for r in recs)
    assert (tmp_path / "kairn-kafka-brokers" / "kairn-kafka-0.crt").read_bytes() != first


def test_malformed_secret_fails_with_one_line_and_changes_nothing(tmp_path, capsys):
    assert certs(tmp_path) == 0
    (tmp_path / "kairn-kafka-brokers" / "kairn-kafka-1.crt").write_bytes(b"not a certificate")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert certs(tmp_path, "--now", "2030-01-01T00:00:00Z", "--renew-ca", "cluster") == 1
    _, lines = records(capsys)
    assert lines[-1] == (
        "kairn-certs: Secret kairn-kafka-brokers: key kairn-kafka-1.crt is not a PEM certificate "
        "(no PEM certificate)"
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--renew-ca", "cluster", "--replace-ca", "cluster"], "one CA step per run"),
        (["--now", "2026-01-01T00:00:00"], "needs a time zone"),
        (["--cert-renewal-days", "400"], "must be shorter"),
    ],
)
def test_bad_arguments_fail_with_a_reason(tmp_path, capsys, args, reason):
    assert certs(tmp_path, *args) == 1
    assert reason in capsys.readouterr().err.splitlines()[-1]


def test_a_step_from_the_environment_is_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KAIRN_REPLACE_CA", "clusterr")
    assert certs(tmp_path) == 1
    assert "'clusterr' is not one of cluster, clients" in capsys.readouterr().err


def test_fullname_is_required(capsys, monkeypatch):
    monkeypatch.delenv("KAIRN_FULLNAME", raising=False)
    assert cli.main(["--out-dir", "/nonexistent"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "kairn-certs: --fullname (KAIRN_FULLNAME) is required"
    )


def test_dry_run_writes_nothing(tmp_path):
    assert certs(tmp_path, "--dry-run") == 0
    assert snapshot(tmp_path) == {}


def test_memory_store_refuses_stale_and_duplicate_writes():
    store = MemorySecretStore()
    s = store.create("a", Secret({"k": b"v"}))
    with pytest.raises(Conflict):
        store.create("a", Secret({}))
    store.replace("a", Secret({"k": b"w"}, resource_version=s.resource_version))
    with pytest.raises(Conflict):
        store.replace("a", Secret({"k": b"x"}, resource_version=s.resource_version))


def test_dir_store_round_trip(tmp_path):
    DirSecretStore(tmp_path).create("s", Secret({"a.crt": b"1", "b": b"2"}, {"x": "y"}))
    again = DirSecretStore(tmp_path).get("s")
    assert again.data == {"a.crt": b"1", "b": b"2"} and again.annotations == {"x": "y"}


class FakeCoreV1:
    """Records what the adapter sends; answers like the API server would."""

    def __init__(self):
        self.objects = {}

    def read_namespaced_secret(self, name, ns):
        if name not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self.objects[name]

    def create_namespaced_secret(self, ns, body):
        if body.metadata.name in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        body.metadata.resource_version = "7"
        self.objects[body.metadata.name] = body
        return body

    def replace_namespaced_secret(self, name, ns, body):
        if body.metadata.resource_version != self.objects[name].metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        body.metadata.resource_version = "8"
        self.objects[name] = body
        return body


def test_kube_store_encodes_and_maps_errors():
    api = FakeCoreV1()
    store = KubeSecretStore("ns1", api=api)
    assert store.get("missing") is None
    pem = issue.cert_pem(issue.new_ca("x", datetime(2026, 1, 1, tzinfo=UTC), 1).cert)
    s = store.create("c", Secret({"ca.crt": pem}, {"a": "b"}, {"l": "m"}))
    assert isinstance(api.objects["c"], V1Secret) and api.objects["c"].type == "Opaque"
    assert isinstance(api.objects["c"].metadata, V1ObjectMeta)
    assert store.get("c").data == {"ca.crt": pem} and s.resource_version == "7"
    with pytest.raises(Conflict, match="Secret c"):
        store.replace("c", Secret({"ca.crt": b""}, resource_version="6"))
    assert store.replace("c", Secret({}, resource_version="7")).resource_version == "8"


def test_release_label_and_quiet_log(tmp_path, capsys):
    assert certs(tmp_path, "--cluster", "prod", "--log-level", "error") == 0
    assert capsys.readouterr().err == ""
    meta = json.loads((tmp_path / "kairn-agents-cert" / ".meta.json").read_text())
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "kairn-certs",
        "kairn.dev/cluster": "prod",
    }
