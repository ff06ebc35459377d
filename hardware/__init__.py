"""festgate hardware package."""
