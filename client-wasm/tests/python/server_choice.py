"""Asks the real python-memcached which server it picks for each key.

Reads one JSON object on stdin: {"keys": [hex, ...], "hashed_keys": [[hash, hex], ...],
"configs": [{"weights": [w, ...], "hash": "cmemcache"|"crc32", "dead": [i, ...]}, ...]}
and prints {"choices": [[index or null per key], ...], "hashed_choices": [[...], ...]}
with one list per config, in order. Servers are never contacted: a live server gets a
stand-in socket object (so python-memcached's own _get_socket sees it connected) and a
dead one is marked dead with python-memcached's own mark_dead()."""
import json
import sys

import memcache

assert memcache.__version__ == "1.62", memcache.__version__

request = json.load(sys.stdin)
keys = [bytes.fromhex(k) for k in request["keys"]]
hashed_keys = [(h, bytes.fromhex(k)) for h, k in request["hashed_keys"]]


class StandInSocket:
    """Truthy, like a connected socket; never used for I/O here."""

    def close(self):
        pass


result = {"choices": [], "hashed_choices": []}
for config in request["configs"]:
    if config["hash"] == "crc32":
        memcache.useOldServerHashFunction()
    elif config["hash"] == "cmemcache":
        memcache.serverHashFunction = memcache.cmemcache_hash
    else:
        raise SystemExit("unknown hash %r" % config["hash"])
    servers = [("127.0.0.1:%d" % (40000 + i), w) for i, w in enumerate(config["weights"])]
    client = memcache.Client(servers)
    dead = set(config["dead"])
    position = {}
    for i, host in enumerate(client.servers):
        position[id(host)] = i
        if i in dead:
            host.mark_dead("marked dead by the compatibility test")
        else:
            host.socket = StandInSocket()

    def choose(key):
        host, _ = client._get_server(key)
        return None if host is None else position[id(host)]

    result["choices"].append([choose(k) for k in keys])
    result["hashed_choices"].append([choose(hk) for hk in hashed_keys])

json.dump(result, sys.stdout)
