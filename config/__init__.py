"""festgate config package."""
