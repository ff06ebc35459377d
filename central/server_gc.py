"""The garbage collector's settings for central's server process (`festgate-central serve`).

A push of 500 events allocates some 15,000 short-lived objects (the parsed models, their
payload dicts, the rows sent to PostgreSQL). With CPython's defaults (a young collection
every 700 allocations, older ones after 10 of those) a busy server collects about every
hundred events, and each full collection walks every object the process ever loaded
(modules, the app, pydantic's validators): measured in the ingest bench, that was 40% of
the server's Python CPU. Freezing what startup loaded takes it out of every collection
(the Instagram recipe: it is never garbage), and a larger young generation collects less
often. Cycles are still collected, only later; nothing here turns collection off.
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
