"""The python-memcached 1.62 side of the interop test (run with the project's .venv).

    python_side.py write SERVERS...   sets 1,000 keys, prints the manifest (key -> expected
                                      value in JSON with $bytes/$int markers) on stdout
    python_side.py read SERVERS...    reads the keys in the manifest given on stdin, prints
                                      {"checked": n, "mismatches": [...]}

Values cover what python-memcached stores: str, int, large int, bytes, dicts/lists/tuples
pickled at its default protocol 0 and at protocol 2, compressed ones, and JSON written
through a JSON "pickler" (read back through a JSON "unpickler").
"""
import base64
import io
import json
import sys

import memcache

KEYS = 1000


class JsonPickler:
    """python-memcached's pickler interface (dump to a file), writing JSON text."""

    def __init__(self, file, protocol=None):
        self.file = file

    def dump(self, value):
        self.file.write(json.dumps(value, separators=(",", ":")).encode())


class JsonUnpickler:
    def __init__(self, file):
        self.file = file

    def load(self):
        return json.loads(self.file.read().decode())


def to_manifest(value):
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > 2**53 - 1:
        return {"$int": str(value)}
    if isinstance(value, (list, tuple)):
        return [to_manifest(v) for v in value]
    if isinstance(value, dict):
        return {k: to_manifest(v) for k, v in value.items()}
    return value


def from_manifest(value):
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$int" in value:
            return int(value["$int"])
        return {k: from_manifest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_manifest(v) for v in value]
    return value


def value_for(i):
    """(kind, value) for key number i: ten kinds in turn."""
    kind = i % 10
    if kind == 0:
        return "str", "text %d ✓ ünïcode" % i
    if kind == 1:
        return "int", i * 7 - 3000
    if kind == 2:
        return "bigint", 2**70 + i
    if kind == 3:
        return "bytes", bytes([i % 256, 0, 255, 13, 10]) * 3
    if kind == 4:
        return "pickle0", {"id": i, "tags": ["a", "b"], "score": i / 4, "ok": True, "none": None}
    if kind == 5:
        return "pickle2", {"id": i, "rows": [[1, "x"], [2, "y"]], "nested": {"deep": [i]}}
    if kind == 6:
        return "tuple", (i, "t", 1.5)
    if kind == 7:
        return "zstr", ("compress me %d " % i) * 40
    if kind == 8:
        return "zpickle", {"id": i, "blob": "y" * 500}
    return "json", {"id": i, "json": [True, None, "s"]}


def clients(servers):
    return {
        "pickle0": memcache.Client(servers),
        "pickle2": memcache.Client(servers, pickleProtocol=2),
        "json": memcache.Client(servers, pickler=JsonPickler, unpickler=JsonUnpickler),
    }


def write(servers):
    mcs = clients(servers)
    manifest = {}
    for i in range(KEYS):
        kind, value = value_for(i)
        key = "py:%s:%d" % (kind, i)
        mc = mcs["pickle2"] if kind == "pickle2" else mcs["json"] if kind == "json" else mcs["pickle0"]
        min_compress = 100 if kind.startswith("z") else 0
        if not mc.set(key, value, min_compress_len=min_compress):
            raise SystemExit("python-memcached could not set %s" % key)
        expected = list(value) if isinstance(value, tuple) else value
        manifest[key] = to_manifest(expected)
    json.dump(manifest, sys.stdout)


def read(servers):
    manifest = json.load(sys.stdin)
    mcs = clients(servers)
    mismatches = []
    for key, expected in manifest.items():
        mc = mcs["json"] if ":json:" in key else mcs["pickle0"]
        got = mc.get(key)
        if isinstance(got, tuple):
            got = list(got)
        want = from_manifest(expected)
        if got != want or type(got) is not type(want):
            mismatches.append({"key": key, "got": repr(got)[:200], "want": repr(want)[:200]})
    # get_multi too: one request per server, as JavaScript's getMulti.
    plain = [k for k in manifest if ":json:" not in k]
    found = mcs["pickle0"].get_multi(plain)
    if len(found) != len(plain):
        mismatches.append({"get_multi": "found %d of %d" % (len(found), len(plain))})
    json.dump({"checked": len(manifest), "mismatches": mismatches}, sys.stdout)


if __name__ == "__main__":
    mode, servers = sys.argv[1], sys.argv[2:]
    {"write": write, "read": read}[mode](servers)
