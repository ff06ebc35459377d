"""festgate sync package."""
