"""`/docs`: the API's Swagger UI from the installed `swagger-ui-bundle` package, so it
works without internet, with an Authorize button for the bearer token."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]  # ships no type hints
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.routing import Route

from shared.errors import NotFound

router = APIRouter(include_in_schema=False)
VENDOR = Path(str(swagger_ui_bundle.swagger_ui_path))
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI sets inline styles itself; scripts come from this origin only
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>floorwatch API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" href="/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/init.js"></script>
</body>
</html>
"""

# The document declares the bearer scheme (contract 7); should it not, the page adds it,
# so the Authorize button is always there. The token is kept in this tab's memory only.
INIT = """"use strict";
fetch("/openapi.json").then(r => r.json()).then(spec => {
  // the packaged Swagger UI (4.x) renders 3.0 documents only; FastAPI's 3.1 reads alike
  if (String(spec.openapi).startsWith("3.1")) spec.openapi = "3.0.3";
  spec.components = spec.components || {};
  const schemes = spec.components.securitySchemes = spec.components.securitySchemes || {};
  if (!Object.keys(schemes).length) {
    schemes.bearer = { type: "http", scheme: "bearer" };
    spec.security = [{ bearer: [] }];
  }
  window.ui = SwaggerUIBundle({ spec, dom_id: "#swagger-ui", persistAuthorization: false,
                                deepLinking: true });
});
"""


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=HEADERS)


@router.get("/docs/static/{name}")
async def docs_static(name: str) -> Response:
    """Swagger UI's own files (a fixed list: no path is read from the URL)."""
    if name == "init.js":
        return Response(INIT, media_type="text/javascript; charset=utf-8", headers=HEADERS)
    media_type = FILES.get(name)
    if media_type is None:
        raise NotFound(f"no docs file {name!r}")
    return Response((VENDOR / name).read_bytes(), media_type=media_type, headers=HEADERS)


def install(app: FastAPI) -> None:
    """Replace FastAPI's `/docs` (which loads Swagger UI from a CDN) with this router."""
    builtin = {app.docs_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes[:] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path in builtin)
    ]
    app.docs_url = None
    app.include_router(router)
