"""The garbage collector's settings for central's server process (`festgate-central serve`).

Each push allocates thousands of short-lived objects (the parsed models, their payload
dicts, the rows sent to PostgreSQL). With CPython's defaults (a young collection every 700
allocations, older ones after 10 of those) the ingest bench's 40,000 events ran about 1,000
young, 90 middle and 7 full collections, and each full one walked every object the process
had loaded (modules, the app, pydantic's validators): 0.33 s of the process's 0.7-0.8 s of
Python CPU. Freezing what startup loaded takes it out of every collection (it is never
garbage), and a larger young generation collects less often. Cycles are still collected,
only later; nothing here turns collection off.
"""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700); the older generations
# keep their default ratios.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze everything loaded so far out of later collections, and collect
    the young generation every `YOUNG_THRESHOLD` allocations: call when startup is done."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
