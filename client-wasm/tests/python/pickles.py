"""Prints pickles of plain data at protocols 0-5, as CPython writes them, with the JSON
each should become under memcache-wasm's mapping (codec/pickle.rs), for the codec's
unit tests. Also pickles that must be refused (class instances), with the name the
error must carry. Output: one JSON array on stdout."""
import json
import pickle
import sys


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def expected(value):
    """memcache-wasm's pickle -> JSON mapping, written independently in Python."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str):
                key = k
            elif isinstance(k, bool):
                key = "true" if k else "false"
            elif k is None:
                key = "null"
            elif isinstance(k, (int, float)):
                key = json.dumps(k)
            elif isinstance(k, bytes):
                key = k.decode("utf-8")
            else:
                key = json.dumps(expected(k), separators=(",", ":"))
            out[key] = expected(v)
        return out
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [expected(v) for v in sorted(value)]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return list(value)
    return value


VALUES = {
    "list": [1, 2, 3],
    "dict": {"a": 1, "b": [True, False, None]},
    "tuple": (1, "two", 3.5),
    "nested": {"users": [{"id": 7, "tags": ("x", "y")}, {"id": 8, "tags": ()}]},
    "str": "héllo wörld ✓ 🙂",
    "bytes": b"raw bytes",
    "binary_bytes": b"\x00\xff\xfe",
    "bytearray": bytearray(b"mutable"),
    "int": 42,
    "negative": -123456,
    "big_int": 2**100,
    "negative_big_int": -(2**70) + 1,
    "float": 3.25,
    "bool": True,
    "none": None,
    "set": {3, 1, 2},
    "frozenset": frozenset({"b", "a"}),
    "int_keys": {1: "one", 2: "two"},
    "tuple_keys": {(1, 2): "pair"},
    "empty_containers": [[], {}, ()],
    "shared_reference": [[1, 2]] * 3,
}

cases = []
for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
    for name, value in VALUES.items():
        data = pickle.dumps(value, protocol=protocol)
        cases.append({"name": name, "protocol": protocol, "hex": data.hex(),
                      "expect": expected(value)})
    data = pickle.dumps(Point(1, 2), protocol=protocol)
    cases.append({"name": "instance", "protocol": protocol, "hex": data.hex(),
                  "refused": "Point"})
    data = pickle.dumps([Point(1, 2)], protocol=protocol)
    cases.append({"name": "instance_in_list", "protocol": protocol, "hex": data.hex(),
                  "refused": "Point"})

json.dump(cases, sys.stdout)
