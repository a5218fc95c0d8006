#!/usr/bin/env python3
"""probe.py HOST:PORT [MIN_BROKERS] — exit 0 when the broker answers a
Kafka Metadata request (API key 3, version 0) listing at least MIN_BROKERS
brokers (default 1), 1 otherwise.

broker.sh and cluster.sh poll readiness with it once a second. It replaces a
JVM tool (kafka-topics --list) whose start-up alone took seconds on a loaded
two-core machine, long enough to push a broker restart past the deadline of
Watermill's TestReconnect.
"""
import socket
import struct
import sys


def metadata_brokers(host, port, timeout=2.0):
    client = b"poststelle-probe"
    # Request header v1: api key, api version, correlation id, client id;
    # body v0: an empty topic array (all topics).
    body = struct.pack(">hhih", 3, 0, 1, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", read(s, 4))[0]
        if size < 8 or size > 16 << 20:
            raise ValueError("bad response size %d" % size)
        resp = read(s, size)
    corr, brokers = struct.unpack(">ii", resp[:8])
    if corr != 1:
        raise ValueError("correlation id %d" % corr)
    return brokers


def read(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def main():
    host, _, port = sys.argv[1].rpartition(":")
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    try:
        return 0 if metadata_brokers(host, int(port)) >= want else 1
    except (OSError, ValueError, struct.error):
        return 1


if __name__ == "__main__":
    sys.exit(main())
