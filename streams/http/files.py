"""The files served from the package's ``static/`` directory: the dashboard page at ``/``, its assets
at ``/static/{file}`` (never a CDN: the dashboard works without the internet) and ``/openapi.json``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from streams.http.responses import NO_CACHE, json_response

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def index(request: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIR / "index.html")


async def openapi(request: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIR / "openapi.json")


async def static(request: web.Request) -> web.StreamResponse:
    """A file directly in ``static/``: no subdirectory, no hidden file, no way out of the directory."""
    name = request.match_info["file"]
    try:
        path = (STATIC_DIR / name).resolve()
        found = not name.startswith(".") and path.parent == STATIC_DIR and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long: not a file of ours either
        found = False
    if not found:
        return json_response({"error": f"no such file {name[:100]!r}"}, status=404)
    return _file(path)


def _file(path: Path) -> web.StreamResponse:
    return web.FileResponse(path, headers=NO_CACHE)
