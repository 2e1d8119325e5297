"""The real python-memcached on one side of the value-compatibility test.

  values.py store HOST:PORT   python-memcached stores one value of each kind and prints
                              {name: {"key": key, "expect": what memcache-wasm must
                              decode it to}}
  values.py load HOST:PORT KEY...
                              python-memcached reads each key and prints
                              {key: {"type": Python type name, "value": JSON form}}

JSON forms: bytes -> {"hex": ...}, int -> {"int": decimal text} (exact at any size),
tuples -> lists, everything else as json.dumps writes it."""
import json
import sys

import memcache

assert memcache.__version__ == "1.62", memcache.__version__


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def store(server):
    default = memcache.Client([server])  # pickle protocol 0, python-memcached's default
    protocol2 = memcache.Client([server], pickleProtocol=2)
    long_text = "memcached " * 500
    cases = [
        # name, client, value, min_compress_len, what memcache-wasm must decode it to
        ("bytes", default, b"\x00\x01binary\xff", 0, {"bytes": "000162696e617279ff"}),
        ("str", default, "héllo wörld ✓ 🙂", 0, {"text": "héllo wörld ✓ 🙂"}),
        ("int", default, 42, 0, {"int": 42}),
        ("negative_int", default, -7, 0, {"int": -7}),
        ("large_int", default, 2**80, 0, {"long": str(2**80)}),
        ("negative_large_int", default, -(2**70), 0, {"long": str(-(2**70))}),
        ("list_p0", default, [1, "two", 3.5, None, True], 0,
         {"json": [1, "two", 3.5, None, True]}),
        ("dict_p0", default, {"a": 1, "b": [1, 2], "c": {"d": "e"}}, 0,
         {"json": {"a": 1, "b": [1, 2], "c": {"d": "e"}}}),
        ("tuple_p0", default, (1, "x", (2, 3)), 0, {"json": [1, "x", [2, 3]]}),
        ("list_p2", protocol2, [1, "two", 3.5, None, False], 0,
         {"json": [1, "two", 3.5, None, False]}),
        ("dict_p2", protocol2, {"a": 1, "b": [1, 2], "ü": "ß"}, 0,
         {"json": {"a": 1, "b": [1, 2], "ü": "ß"}}),
        ("tuple_p2", protocol2, (1, "x", (2, 3)), 0, {"json": [1, "x", [2, 3]]}),
        ("compressed_str", default, long_text, 100, {"text": long_text, "compressed": True}),
        ("compressed_bytes", default, b"abc" * 1000, 100,
         {"bytes": (b"abc" * 1000).hex(), "compressed": True}),
        ("compressed_list_p0", default, list(range(1000)), 100,
         {"json": list(range(1000)), "compressed": True}),
        ("compressed_dict_p2", protocol2, {"k%d" % i: i for i in range(300)}, 100,
         {"json": {"k%d" % i: i for i in range(300)}, "compressed": True}),
        ("instance", default, Point(1, 2), 0, {"refused": "Point"}),
    ]
    out = {}
    for name, client, value, min_compress_len, expect in cases:
        key = "py:" + name
        if not client.set(key, value, min_compress_len=min_compress_len):
            raise SystemExit("python-memcached could not store %s" % name)
        out[name] = {"key": key, "expect": expect}
    json.dump(out, sys.stdout)


def json_form(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, (list, tuple)):
        return [json_form(v) for v in value]
    if isinstance(value, dict):
        return {k: json_form(v) for k, v in value.items()}
    return value


def load(server, keys):
    client = memcache.Client([server])
    out = {}
    for key in keys:
        value = client.get(key)
        out[key] = {"type": type(value).__name__, "value": json_form(value)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    mode, server = sys.argv[1], sys.argv[2]
    if mode == "store":
        store(server)
    elif mode == "load":
        load(server, sys.argv[3:])
    else:
        raise SystemExit("usage: values.py store|load HOST:PORT [KEY...]")
