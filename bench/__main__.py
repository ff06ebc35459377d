"""`python -m bench NAME [options] --json`: run one benchmark, print one JSON object last."""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys

NAMES = (
    "edge-decide",
    "ingest",
    "initial-sync",
    "camera-decode",
    "propagation",
    "slow-clients",
    "drain",
    "longpoll",
    "ops-console",
)


def main(argv: list[str]) -> int:
    """Dispatch NAME to bench.<name>.main(argv) and print its figures."""
    if not argv or argv[0] not in NAMES:
        print(f"usage: python -m bench {{{','.join(NAMES)}}} [options] [--json]", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    as_json = "--json" in rest
    rest = [a for a in rest if a != "--json"]
    # Benchmarks sign tickets in throwaway databases: a KEK of their own (central.kek),
    # passed down to the central processes they start.
    os.environ.setdefault("FESTGATE_CENTRAL_KEK", base64.b64encode(os.urandom(32)).decode())
    # Imported when chosen: each benchmark brings its own heavy dependencies.
    module = importlib.import_module(f"bench.{name.replace('-', '_')}")
    figures = module.main(rest)
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
