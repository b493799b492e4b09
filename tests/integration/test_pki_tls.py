"""kairn-certs' certificates in real TLS handshakes: OpenSSL (Python's ssl, as used by the agents
and stunnel) and Java's JSSE (as used by Kafka and ZooKeeper), with the very files the command
writes. A wrong SAN, key usage or PKCS#12 encoding fails a handshake here."""

from __future__ import annotations

import itertools
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from agents.pki import cli

NS = "ns1"
KAFKA0 = "kairn-kafka-0"
KAFKA0_FQDN = f"{KAFKA0}.kairn-kafka-brokers.{NS}.svc.cluster.local"
JAVA = r"""
import java.io.*;
import java.net.*;
import java.nio.file.*;
import java.security.KeyStore;
import javax.net.ssl.*;

public class Tls {
    static char[] pw(String f) throws IOException {
        return Files.readString(Path.of(f)).toCharArray();
    }
    static KeyStore load(String path, String pwFile) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(path)) { ks.load(in, pw(pwFile)); }
        return ks;
    }
    // args: server|client keystore.p12 keystore.password truststore.p12 truststore.password
    //       [host port]
    public static void main(String[] a) throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(load(a[1], a[2]), pw(a[2]));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(load(a[3], a[4]));
        SSLContext ctx = SSLContext.getInstance("TLSv1.3");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        SSLSocket s;
        if (a[0].equals("server")) {
            SSLServerSocket ss = (SSLServerSocket) ctx.getServerSocketFactory()
                .createServerSocket(0, 1, InetAddress.getLoopbackAddress());
            ss.setNeedClientAuth(true);
            System.out.println("port " + ss.getLocalPort());
            System.out.flush();
            ss.setSoTimeout(60000);
            s = (SSLSocket) ss.accept();
        } else {
            int port = Integer.parseInt(a[6]);
            Socket plain = new Socket(InetAddress.getLoopbackAddress(), port);
            // Layered on a loopback socket, named as the pod: the name is what gets verified.
            s = (SSLSocket) ctx.getSocketFactory().createSocket(plain, a[5], port, true);
            SSLParameters p = s.getSSLParameters();
            p.setEndpointIdentificationAlgorithm("HTTPS");  // what Kafka does by default
            s.setSSLParameters(p);
        }
        s.setSoTimeout(60000);
        s.startHandshake();
        System.out.println("peer " + s.getSession().getPeerPrincipal().getName());
        s.getOutputStream().write("ok".getBytes());
        s.getOutputStream().flush();
        s.getInputStream().read(new byte[2]);
        s.close();
    }
}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    assert cli.main(["--fullname", "kairn", "--namespace", NS, "--out-dir", str(out)]) == 0
    return out


def ctx(pki: Path, server: bool, secret: str, prefix: str, trust: Path) -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    c.load_cert_chain(pki / secret / f"{prefix}.crt", pki / secret / f"{prefix}.key")
    c.load_verify_locations(trust)
    c.verify_mode = ssl.CERT_REQUIRED
    return c


def agents_client(pki: Path, trust: Path | None = None) -> ssl.SSLContext:
    return ctx(pki, False, "kairn-agents-cert", "user", trust or pki / "kairn-agents-cert/ca.crt")


def broker_server(pki: Path, trust: Path | None = None) -> ssl.SSLContext:
    trust = trust or pki / "kairn-cluster-ca-cert/ca.crt"
    return ctx(pki, True, "kairn-kafka-brokers", KAFKA0, trust)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> dict:
    """One mutual-TLS exchange over loopback; returns the client certificate the server saw and
    raises the first side's verification error."""
    seen: dict = {}
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(30)

        def serve():
            try:
                conn, _ = srv.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    seen["peer"] = tls.getpeercert()
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as e:
                seen["error"] = e

        t = threading.Thread(target=serve)
        t.start()
        try:
            with (
                socket.create_connection(srv.getsockname(), timeout=30) as raw,
                client.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                assert tls.recv(2) == b"ok"
        finally:
            t.join(30)
    if "error" in seen:  # the server refused the client certificate
        raise seen["error"]
    return seen


def subject_cn(peer: dict) -> str:
    return dict(x[0] for x in peer["subject"])["commonName"]


@pytest.mark.parametrize(
    "hostname",
    [KAFKA0_FQDN, f"{KAFKA0}.kairn-kafka-brokers", "kairn-kafka-bootstrap",
     f"kairn-kafka-bootstrap.{NS}.svc", "localhost", "127.0.0.1"],
)  # fmt: skip
def test_agents_reach_a_broker_by_every_name(pki, hostname):
    seen = handshake(broker_server(pki), agents_client(pki), hostname)
    assert subject_cn(seen["peer"]) == "kairn-agents"


def test_a_name_not_in_the_certificate_is_refused(pki):
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(broker_server(pki), agents_client(pki), f"kairn-kafka-1.kairn-kafka-brokers.{NS}")


def test_zookeeper_peers_verify_each_other(pki):
    trust = pki / "kairn-cluster-ca-cert/ca.crt"
    server = ctx(pki, True, "kairn-zookeeper-nodes", "kairn-zookeeper-0", trust)
    client = ctx(pki, False, "kairn-zookeeper-nodes", "kairn-zookeeper-1", trust)
    host = f"kairn-zookeeper-0.kairn-zookeeper-nodes.{NS}.svc"
    assert subject_cn(handshake(server, client, host)["peer"]) == "kairn-zookeeper"


def java(*args: str | Path, tmp: Path) -> subprocess.Popen:
    src = tmp / "Tls.java"
    src.write_text(JAVA)
    cmd = ["java", "-Djava.security.egd=file:/dev/urandom", str(src), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_java_broker_keystore_and_truststore_accept_the_agents(pki, tmp_path):
    b, ca = pki / "kairn-kafka-brokers", pki / "kairn-cluster-ca-cert"
    proc = java("server", b / f"{KAFKA0}.p12", b / f"{KAFKA0}.password", ca / "ca.p12",
                ca / "ca.password", tmp=tmp_path)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("port "), line + proc.stderr.read()
        port = int(line.split()[1])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
            agents_client(pki).wrap_socket(raw, server_hostname=KAFKA0_FQDN) as tls,
        ):
            assert tls.recv(2) == b"ok"
            tls.sendall(b"ok")
        # Kafka's principal mapping rule turns this into the super user "kairn-agents".
        assert proc.stdout.readline().strip() == "peer CN=kairn-agents"
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_java_client_verifies_a_broker_by_hostname(pki, tmp_path):
    """Java as the client, with HTTPS endpoint identification on, as Kafka's clients run."""
    a, ca = pki / "kairn-agents-cert", pki / "kairn-cluster-ca-cert"
    server = broker_server(pki)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(60)
        port = srv.getsockname()[1]
        proc = java("client", a / "user.p12", a / "user.password", ca / "ca.p12",
                    ca / "ca.password", KAFKA0_FQDN, port, tmp=tmp_path)  # fmt: skip
        try:
            conn, _ = srv.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                assert subject_cn(tls.getpeercert()) == "kairn-agents"
                tls.sendall(b"ok")
                assert tls.recv(2) == b"ok"
            assert proc.stdout.readline().strip() == "peer CN=kairn-kafka"
            assert proc.wait(60) == 0, proc.stderr.read()
        finally:
            proc.kill()
            proc.wait()


def test_pods_verify_each_other_at_every_step_of_a_ca_replacement(pki, tmp_path):
    """Rolled and unrolled pods meet during each roll: a pod that has not restarted yet holds
    the previous step's certificate and trust, and must still verify its restarted peers."""
    steps = [
        ("before", []),
        ("trust", ["--replace-ca", "cluster"]),
        ("promote", ["--promote-ca", "cluster"]),
        ("drop", ["--drop-old-ca", "cluster"]),
    ]
    work = tmp_path / "live"
    shutil.copytree(pki, work)
    snaps = {}
    for name, args in steps:
        assert (
            cli.main(["--fullname", "kairn", "--namespace", NS, "--out-dir", str(work), *args]) == 0
        )
        snaps[name] = tmp_path / name
        shutil.copytree(work, snaps[name])
    for (prev, _), (cur, _) in itertools.pairwise(steps):
        old, new = snaps[prev], snaps[cur]
        # a restarted broker (new step) and an agent that has not restarted (previous step),
        # and the other way round
        handshake(broker_server(new), agents_client(old), KAFKA0_FQDN)
        handshake(broker_server(old), agents_client(new), KAFKA0_FQDN)
    # Why the steps exist: a pod trusting only the old CA cannot verify a promoted certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(broker_server(snaps["promote"]), agents_client(snaps["before"]), KAFKA0_FQDN)


def test_a_broker_refuses_a_client_of_another_ca(pki, tmp_path):
    other = tmp_path / "other"
    assert cli.main(["--fullname", "kairn", "--namespace", NS, "--out-dir", str(other)]) == 0
    # The client trusts the broker, but its own certificate comes from a CA the broker ignores.
    client = agents_client(other, trust=pki / "kairn-cluster-ca-cert/ca.crt")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(broker_server(pki), client, KAFKA0_FQDN)
