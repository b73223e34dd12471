"""Seats an admin can act on (``auth.require(..., admin=True)``): the dormant records of a
subscription with whose seat their deactivation frees, and the roster of every counted person
(``counters/dormancy.py``). Both show the provider's user ids, opened with the worker's secret, so
only admins may call them; both load the committed state afresh (O(records), an admin's question)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from aiohttp import web

from counters import (
    DORMANT_CSV_HEADER,
    ROSTER_CSV_HEADER,
    Digester,
    dormant,
    dormant_csv_rows,
    roster,
    roster_csv_rows,
)
from streams.http import auth
from streams.http.responses import committed_state, json_response, now_ms

if TYPE_CHECKING:
    from counters import CountsReader

MAX_DORMANT_DAYS = 3650
ROSTER_PAGE = 1000
"""People per roster page unless ``limit`` asks for fewer (or more, up to :data:`MAX_ROSTER_PAGE`)."""
MAX_ROSTER_PAGE = 10_000


class SeatsApi:
    """``/dormant`` and ``/roster``, bound to one reader and the worker's digester (its sealer opens the ids)."""

    def __init__(self, reader: CountsReader, digester: Digester | None = None) -> None:
        self.reader = reader
        self.digester = digester or Digester()

    async def dormant(self, request: web.Request) -> web.Response:
        """Counted records without a login for ``days`` days (default: the subscription's
        ``dormant_days``), oldest login first; JSON, or CSV when the client accepts ``text/csv``."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        state = await committed_state(self.reader, subscription)
        if isinstance(state, web.Response):
            return state
        days = _whole(request.query.get("days"), state.settings.dormant_days, MAX_DORMANT_DAYS)
        if days is None:
            return json_response({"error": f"days must be a whole number from 1 to {MAX_DORMANT_DAYS}"}, status=400)
        report = dormant(state, now_ms() * 1000, days, self.digester.sealer)
        if _wants_csv(request):
            return _csv(f"{subscription}-dormant.csv", DORMANT_CSV_HEADER, dormant_csv_rows(report))
        return json_response(report)

    async def roster(self, request: web.Request) -> web.Response:
        """Every counted person with class, rule and records, a page at a time: ``after`` is the
        ``next`` of the page before (in CSV, the ``X-Next-Cursor`` header)."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        limit = _whole(request.query.get("limit"), ROSTER_PAGE, MAX_ROSTER_PAGE)
        if limit is None:
            return json_response({"error": f"limit must be a whole number from 1 to {MAX_ROSTER_PAGE}"}, status=400)
        state = await committed_state(self.reader, subscription)
        if isinstance(state, web.Response):
            return state
        page = roster(state, self.digester.sealer, after=request.query.get("after"), limit=limit)
        if _wants_csv(request):
            response = _csv(f"{subscription}-roster.csv", ROSTER_CSV_HEADER, roster_csv_rows(page))
            if page["next"] is not None:
                response.headers["X-Next-Cursor"] = page["next"]
            return response
        return json_response(page)



def _whole(given: str | None, default: int, largest: int) -> int | None:
    """A query parameter that must be a whole number from 1 to ``largest`` (None: it is not one)."""
    if given is None:
        return default
    try:
        value = int(given)
    except ValueError:
        return None
    return value if 1 <= value <= largest else None


def _wants_csv(request: web.Request) -> bool:
    return "text/csv" in request.headers.get("Accept", "") or request.query.get("format") == "csv"


def _csv(filename: str, header: tuple[str, ...], rows: list[list[Any]]) -> web.Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return web.Response(text=buffer.getvalue(), content_type="text/csv", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{filename}"'})
