"""`tickstream view`: the chart site served from its bucket over plain HTTP, on any local stack.

The page, the manifest and the charts are read through the S3 API on each request, so the
viewer shows exactly what the chart builder published, whichever endpoint holds the bucket.
Only the site's own paths are served.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from stores.site_bucket import SiteBucket, SiteError, SiteObjectMissing

SITE_PATHS = ("index.html", "manifest.json")
CHARTS_PREFIX = "charts/"


def site_key(path: str) -> str | None:
    """The bucket key behind a request path, or None for anything that is not part of the site."""
    key = unquote(urlsplit(path).path).lstrip("/") or "index.html"
    if key in SITE_PATHS:
        return key
    if key.startswith(CHARTS_PREFIX) and key.endswith(".png") and ".." not in key.split("/"):
        return key
    return None


class SiteViewer:
    def __init__(self, site: SiteBucket, host: str, port: int) -> None:
        handler = self._handler_class(site)
        self._server = ThreadingHTTPServer((host, port), handler)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_until(self, stop: threading.Event) -> None:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        stop.wait()
        self._server.shutdown()
        self._server.server_close()
        thread.join()

    @staticmethod
    def _handler_class(site: SiteBucket) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = site_key(self.path)
                if key is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                try:
                    body, content_type = site.read(key)
                except SiteObjectMissing:
                    self.send_error(HTTPStatus.NOT_FOUND, "not published yet")
                    return
                except SiteError as exc:
                    self.send_error(HTTPStatus.BAD_GATEWAY, str(exc))
                    return
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        return Handler
