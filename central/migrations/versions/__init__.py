"""Schema revisions, one module each, applied in order by `central.pg.migrate`."""
