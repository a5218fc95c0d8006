#!/usr/bin/env python3
"""Computes the fixed test vectors of leaf_test.go and checkpoint_test.go
from docs/wire-format.md alone, without the Go code, so that the Go tests
compare two independent implementations of the documented encoding.

Run: python3 eventstore/integrity/testdata/vectors.py
Needs the 'cryptography' package for the Ed25519 vector only.
"""
import base64
import calendar
import hashlib
import struct


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def string(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return u32(len(b)) + b


def leaf(partition, offset, prev, recorded_ns, id_, tenant, stream, type_,
         stream_seq, version, message_key, correlation, causation, metadata, data):
    b = b"poststelle-event-v1\x00"
    b += u32(partition) + u64(offset) + prev + u64(recorded_ns)
    for s in (id_, tenant, stream, type_):
        b += string(s)
    b += u64(stream_seq) + u32(version)
    for s in (message_key, correlation, causation):
        b += string(s)
    keys = sorted(metadata, key=lambda k: k.encode("utf-8"))  # byte order
    b += u32(len(keys))
    for k in keys:
        b += string(k) + string(metadata[k])
    return b + string(data)


def leaf_hash(enc):
    return hashlib.sha256(b"\x00" + enc).digest()


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


full = leaf(
    partition=2, offset=7, prev=bytes(range(32)),
    recorded_ns=calendar.timegm((2024, 5, 1, 12, 34, 56)) * 10**9 + 789012345,
    id_="evt-1", tenant="default", stream="msg-abc", type_="MessageReceived",
    stream_seq=3, version=1, message_key="smtp:<a@example.org>",
    correlation="msg-abc", causation="rcv-0",
    metadata={"zeta": "z", "alpha": "\u00e4", "Zulu": "1"},
    data=b'{"x":1}')
empty = leaf(
    partition=0, offset=0, prev=bytes(32), recorded_ns=0,
    id_="", tenant="", stream="", type_="", stream_seq=0, version=0,
    message_key="", correlation="", causation="", metadata={}, data=b"")

for name, enc in (("full", full), ("empty", empty)):
    print(name, "encoding", enc.hex())
    print(name, "leaf hash", leaf_hash(enc).hex())

# Tree head over three leaves: the leaf hashes of full, empty, full.
l0, l1 = leaf_hash(full), leaf_hash(empty)
print("root of 3", node(node(l0, l1), l0).hex())

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
except ImportError:
    raise SystemExit("cryptography not installed: Ed25519 vector skipped")

key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
print("key id", hashlib.sha256(spki).digest()[:8].hex())
root = node(node(l0, l1), l0)
note = ("poststelle/checkpoint/v1\nlog test-log\npartition 2\nsize 3\n"
        "root " + base64.b64encode(root).decode() + "\n"
        "time 2024-05-01T12:34:56.789012345Z\n").encode()
print("note", note)
print("signature", base64.b64encode(key.sign(note)).decode())
