"""The admin web page: one static HTML file and a small script, no build step.

The page holds no data itself; its script calls the JSON API with the token the user enters
(kept in sessionStorage). A token may also arrive in the URL fragment (`/#token=...`), which
browsers never send to the server; the script stores it and removes it from the address bar.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Only the page's own script and styles run, and no other site may frame it."""

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)
