"""The web layer: the /v1 API, the UI and /metrics (arrives with the scheduler and web issues)."""
