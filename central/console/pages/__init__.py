"""The console's pages, one module each with its `router` (the list: `central.console.nav`)."""
