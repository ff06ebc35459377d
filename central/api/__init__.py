"""Central's HTTP API (``/v1``): device sync endpoints and role-checked ops endpoints."""
