"""festgate bench package."""
