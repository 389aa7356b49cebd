"""The end-to-end test's site: a tutorial page with an HTML5 video, sitelog's snippet and endpoint.

`make_app(config, video, reader)` is a WSGI app: `/watch` renders the page (visitor cookie, page
token, resume position and the progress so far, read back with ProgressReader), `/video.webm`
serves the video with byte ranges (browsers seek with them), and `EventsApp` answers
`/sitelog/events` and `/sitelog/sitelog.js`.
"""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from html import escape
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sitelog.agent.events.wsgi import EventsApp
from sitelog.agent.visitor import parse_cookies
from sitelog.config import Config
from sitelog.shipper.progress import ProgressReader, learner_of

COURSE, TUTORIAL, LANGUAGE = "Linux", "Intro-to-the-shell", "English"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{tutorial} - sitelog demo</title>
<style>body {{ font-family: sans-serif; margin: 16px; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 4px 16px; }}
dt {{ font-weight: bold; }} dd {{ margin: 0; }}</style>
{script}</head>
<body><h1>{course}: {tutorial} ({language})</h1>
<video id="lesson" width="320" height="240" controls muted preload="auto" src="/video.webm"
  data-sitelog-course="{course}" data-sitelog-tutorial="{tutorial}"
  data-sitelog-language="{language}" data-sitelog-resume="{resume}"></video>
<dl id="progress">{progress}</dl>
</body></html>
"""
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def progress_list(found: Any) -> str:
    if found is None:
        return "<dt>progress</dt><dd>not watched yet</dd>"
    rows = {"resume at": f"{found.resume_position:.1f} s", "watched": f"{found.watched_seconds:.1f}"
            f" of {found.duration or 0:.1f} s", "furthest": f"{found.furthest:.1f} s",
            "visits": found.visits, "completed": "yes" if found.completed else "no"}
    return "".join(f"<dt>{name}</dt><dd>{escape(str(value))}</dd>" for name, value in rows.items())


def make_app(config: Config, video: Path, reader: ProgressReader) -> EventsApp:
    """The demo site, behind sitelog's events endpoint."""
    events: EventsApp

    def site(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/video.webm":
            return serve_video(video, environ, start_response)
        if path != "/watch":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        visitors = events.endpoint.visitors
        cookies = parse_cookies(environ.get("HTTP_COOKIE"))
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
        state = visitors.read(cookies)
        if state is None:  # what the visitor middleware does on a first visit
            visit = visitors.track(cookies)
            headers += [("Set-Cookie", value) for value in visitors.headers(visit, False)]
            found = None
        else:
            found = reader.tutorial(learner_of(visitor_id=state.id), COURSE, TUTORIAL, LANGUAGE)
        page = PAGE.format(script=events.script_tag(environ), course=COURSE, tutorial=TUTORIAL,
                           language=LANGUAGE, progress=progress_list(found),
                           resume=0 if found is None else found.resume_position)
        start_response("200 OK", headers)
        return [page.encode()]

    events = EventsApp(site, config)
    return events


def serve_video(video: Path, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The video, whole or one byte range."""
    content = video.read_bytes()
    size = len(content)
    headers = [("Content-Type", "video/webm"), ("Accept-Ranges", "bytes")]
    wanted = RANGE.match(environ.get("HTTP_RANGE", ""))
    if wanted is None:
        start_response("200 OK", [*headers, ("Content-Length", str(size))])
        return [content]
    first = int(wanted[1]) if wanted[1] else max(0, size - int(wanted[2] or 0))
    last = min(size - 1, int(wanted[2])) if wanted[1] and wanted[2] else size - 1
    part = content[first:last + 1]
    start_response("206 Partial Content", [*headers, ("Content-Length", str(len(part))),
                                           ("Content-Range", f"bytes {first}-{last}/{size}")])
    return [part]


class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, server_class=ThreadingServer,
                         handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
