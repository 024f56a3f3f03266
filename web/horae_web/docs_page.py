"""`GET /docs`: the OpenAPI document rendered by Swagger UI, vendored under `static/swagger-ui/` (no CDN).

Every URL in the page is relative, so the page works behind a reverse proxy that serves horae on a
sub-path: `/x/docs` loads `/x/static/...` and `/x/v1/openapi.json`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>horae API</title>
  <link rel="stylesheet" href="static/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="static/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="static/docs.js"></script>
</body>
</html>
"""


async def docs(request: Request) -> Response:
    return HTMLResponse(PAGE)
