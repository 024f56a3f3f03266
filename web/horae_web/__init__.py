"""The web layer: Dkron's `/v1` HTTP API (and, later, the UI and /metrics) over `horae.service.HoraeService`.

`horae_web.app.create_app(service)` builds the Starlette app that `horae agent` serves. The core never
imports this package.
"""
