"""Stores keys through libmemcached (Debian's python3-pylibmc) with a ketama behaviour,
so the test can look up which server each key landed on.

  ketama.py BEHAVIOUR HOST:PORT:WEIGHT...   (keys as a JSON list of hex on stdin)

BEHAVIOUR is a pylibmc behaviour name set to True, e.g. ketama_weighted. Prints
{"stored": count, "failed": [hex of keys libmemcached could not store], "behaviors":
{...}} with the behaviours libmemcached reports. A server nobody listens on makes the
keys libmemcached assigns to it fail, which shows its choice without a server there."""
import json
import sys

import pylibmc

behaviour, servers = sys.argv[1], sys.argv[2:]
keys = [bytes.fromhex(k) for k in json.load(sys.stdin)]
# A short connect timeout: a server that is down fails fast, and libmemcached then
# marks it for retry instead of connecting again for every key.
client = pylibmc.Client(servers, behaviors={behaviour: True, "connect_timeout": 200})
stored, failed = 0, []
for key in keys:
    try:
        ok = client.set(key, b"1")
    except pylibmc.Error:
        ok = False
    if ok:
        stored += 1
    else:
        failed.append(key.hex())
reported = client.behaviors
json.dump({
    "stored": stored,
    "failed": failed,
    "behaviors": {name: reported[name] for name in ("distribution", "hash", "ketama_weighted")},
}, sys.stdout)
