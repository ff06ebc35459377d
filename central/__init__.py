"""festgate central package."""
