"""Stores the dashboard's sample keys with the real python-memcached and its defaults, so the
page shows data written by Python: the seed's `top5films` rows (pickled, protocol 0, as
python-memcached does by default), text, an integer counter and a run of `user:` keys for
the key browser. Used by the browser test and by scripts/demo.sh.

Usage: seed.py HOST:PORT [HOST:PORT ...]   (prints one line per key: key, server)
"""

import sys

import memcache

# The seed's example: the rows of a "top five films" query, cached as python-memcached
# programs cache query results (a list of tuples, pickled).
TOP5FILMS = [
    ("The Shawshank Redemption", 1994, 9.3),
    ("The Godfather", 1972, 9.2),
    ("The Dark Knight", 2008, 9.0),
    ("The Godfather Part II", 1974, 9.0),
    ("12 Angry Men", 1957, 9.0),
]

# Enough `user:` keys for the key browser to need a second page (it shows 25 a page).
USER_KEYS = 30


def main(servers):
    mc = memcache.Client(servers)
    values = {
        "top5films": TOP5FILMS,
        "greeting": "hello from python-memcached",
        "counter:visits": 41,
    }
    for i in range(1, USER_KEYS + 1):
        values[f"user:{i:03d}"] = {"id": i, "name": f"user {i}", "admin": i == 1}
    for key, value in values.items():
        if not mc.set(key, value):
            sys.exit(f"seed: python-memcached could not store {key!r} on {servers}")
        server, _ = mc._get_server(key.encode())
        print(f"{key} {server.address[0]}:{server.address[1]}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
