"""The HTTP route that serves download links (lib.download_links) beside the Streamlit app.

Mounted by asgi.py (Streamlit's `st.App`), so it runs in the Streamlit server process, where the
pages that hand out the tokens run.
"""
from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from lib import download_links

EXPIRED = ("This download link has expired or is not known here (links last 30 minutes and end when the app "
           "restarts): go back to the page and press Download again.")


def content_disposition(file_name: str) -> str:
    """An attachment header every browser reads: an ASCII fallback plus the UTF-8 name (RFC 6266)."""
    fallback = file_name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name)}"


async def serve_download(request: Request) -> Response:
    download = download_links.take(str(request.path_params["token"]))
    if download is None:
        return PlainTextResponse(EXPIRED, status_code=404)
    if download.on_start is not None:
        download.on_start()
    # A sync iterator: Starlette runs it in its thread pool, off the event loop.
    return StreamingResponse(download_links.body(download),
                             media_type=download_links.MEDIA_TYPES[download.file_format],
                             headers={"Content-Disposition": content_disposition(download.file_name),
                                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


ROUTES = [Route(f"/{download_links.ROUTE}/{{token}}", serve_download, methods=["GET"])]
