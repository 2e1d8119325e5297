"""Stores keys through libmemcached (Debian's python3-pylibmc) with a ketama behaviour,
so the test can look up which server each key landed on.

  ketama.py BEHAVIOUR HOST:PORT:WEIGHT...   (keys as a JSON list of hex on stdin)

BEHAVIOUR is a pylibmc behaviour name set to True, e.g. ketama_weighted. Prints
{"stored": count, "behaviors": {...}} with the behaviours libmemcached reports."""
import json
import sys

import pylibmc

behaviour, servers = sys.argv[1], sys.argv[2:]
keys = [bytes.fromhex(k) for k in json.load(sys.stdin)]
client = pylibmc.Client(servers, behaviors={behaviour: True})
for key in keys:
    if not client.set(key, b"1"):
        raise SystemExit("pylibmc could not store %r" % key)
reported = client.behaviors
json.dump({
    "stored": len(keys),
    "behaviors": {name: reported[name] for name in ("distribution", "hash", "ketama_weighted")},
}, sys.stdout)
