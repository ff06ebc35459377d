"""festgate edge package."""
