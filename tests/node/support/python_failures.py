"""The python-memcached 1.62 side of the failure-model tests (run with the project's .venv).

    python_failures.py set-large SERVER KEY SIZE   stores SIZE bytes (byte i is i % 251)
                                                   under KEY, as python-memcached writes
                                                   raw bytes (flags 0), past its 1 MB limit
    python_failures.py get-multi SERVERS...        get_multi of the JSON list of keys on
                                                   stdin; prints {key: value} of the found

get-multi lists every server, dead ones too: python-memcached then marks a server it cannot
reach dead and re-hashes its keys, the walk the JavaScript client must follow.
"""
import json
import sys

import memcache


def pattern(size):
    return bytes(i % 251 for i in range(size))


def set_large(server, key, size):
    size = int(size)
    mc = memcache.Client([server], server_max_value_length=size + 1024)
    if not mc.set(key, pattern(size)):
        raise SystemExit("python-memcached could not set %s (%d bytes)" % (key, size))


def get_multi(servers):
    keys = json.load(sys.stdin)
    found = memcache.Client(servers).get_multi(keys)
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "set-large":
        set_large(*args)
    elif mode == "get-multi":
        get_multi(args)
    else:
        raise SystemExit("unknown mode %s" % mode)
