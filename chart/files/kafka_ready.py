"""Readiness of a broker: an ApiVersions request over mutual TLS to its TLS listener on
127.0.0.1:<port>, the one argument. Kafka processes requests only after the broker has
registered in ZooKeeper, so a reply means "this broker is serving". Runs in the broker pod's
TLS sidecar (the kairn image carries Python; the Kafka image does not), as this pod's own
identity: the certificate files of POD_NAME."""

import os
import socket
import ssl
import struct
import sys

port = int(sys.argv[1])
pod = os.environ["POD_NAME"]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations("/etc/kafka/cluster-ca/ca.crt")
ctx.load_cert_chain(f"/etc/kafka/certs/{pod}.crt", f"/etc/kafka/certs/{pod}.key")
client_id = b"kairn-readiness"
correlation = 0x6B6169
# ApiVersions (key 18) v0: api key, api version, correlation id, client id
request = struct.pack(">hhih", 18, 0, correlation, len(client_id)) + client_id


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


try:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=4) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", read_exactly(tls, 4))
        got, error = struct.unpack(">ih", read_exactly(tls, size)[:6])
except (OSError, ssl.SSLError, struct.error) as exc:
    print(f"not serving: {exc}", file=sys.stderr)
    sys.exit(1)
if got != correlation or error != 0:
    print(f"not serving: ApiVersions error {error}", file=sys.stderr)
    sys.exit(1)
