"""An unusable buffer path never raises into the app: each entry point warns once, counts and
no-ops, in a real process; Django's `check` reports it at start-up (sitelog.E002)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def unusable_paths(tmp_path: Path) -> dict[str, Path]:
    """Buffer paths no process can open: parent is a file, path is a directory, no permission."""
    plain = tmp_path / "plain-file"
    plain.write_text("not a directory")
    directory = tmp_path / "a-directory"
    directory.mkdir()
    locked = tmp_path / "no-permission"
    locked.mkdir()
    locked.chmod(0o500)
    return {"parent_is_file": plain / "buffer.db", "path_is_directory": directory,
            "no_permission": locked / "buffer.db"}


def run(code: str, buffer_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with buffer.path set by the environment, as an app would."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SITELOG_")}
    env["SITELOG_BUFFER_PATH"] = str(buffer_path)
    env["PYTHONPATH"] = os.pathsep.join([str(cwd), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


LOGGING_APP = """
    import logging
    from sitelog.agent import drops
    from sitelog.agent.logging import SitelogHandler
    logging.basicConfig(level=logging.INFO)
    app = logging.getLogger("app")
    app.addHandler(SitelogHandler())
    for n in range(50):
        app.info("message %d", n)
    print("served", sum(drops.counts().values()), drops.counts())
"""


@pytest.mark.parametrize("case", ["parent_is_file", "path_is_directory", "no_permission"])
def test_logging_handler_warns_once_counts_and_the_app_goes_on(tmp_path, case) -> None:
    if case == "no_permission" and os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    path = unusable_paths(tmp_path)[case]
    result = run(LOGGING_APP, path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("served 50 "), result.stdout
    assert "buffer_unusable:logging" in result.stdout
    assert result.stderr.count("cannot be opened") == 1, result.stderr
    assert "FileExistsError" not in result.stderr.replace("(FileExistsError", "")


WSGI_APP = """
    import sys, threading, urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server
    from sitelog.agent import drops
    from sitelog.agent.wsgi import SitelogMiddleware

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, SitelogMiddleware(app), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/page"
    bodies = [urllib.request.urlopen(url, timeout=30).read() for _ in range(5)]
    server.shutdown()
    print(bodies.count(b"hello"), drops.counts().get("buffer_unusable:wsgi"))
"""


def test_wsgi_server_keeps_serving_with_an_unusable_buffer(tmp_path) -> None:
    result = run(WSGI_APP, unusable_paths(tmp_path)["parent_is_file"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "5"]
    assert result.stderr.count("cannot be opened") == 1, result.stderr


ASGI_APP = """
    import asyncio
    from sitelog.agent import drops
    from sitelog.agent.asgi import SitelogMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    async def main():
        wrapped = SitelogMiddleware(app)
        sent = []
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/",
                 "query_string": b"", "headers": [], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80), "scheme": "http", "http_version": "1.1"}
        await wrapped(scope, receive, send)
        return sent[0]["status"]

    print(asyncio.run(main()), drops.counts().get("buffer_unusable:asgi"))
"""


def test_asgi_middleware_serves_with_an_unusable_buffer(tmp_path) -> None:
    result = run(ASGI_APP, unusable_paths(tmp_path)["path_is_directory"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "1"]


SETTINGS = """
SECRET_KEY = "test"
INSTALLED_APPS = ["sitelog.agent.django"]
MIDDLEWARE = ["sitelog.agent.django.SitelogMiddleware"]
ROOT_URLCONF = "urls"
ALLOWED_HOSTS = ["*"]
"""
URLS = """
from django.http import HttpResponse
from django.urls import path
urlpatterns = [path("", lambda request: HttpResponse("hello"))]
"""
DJANGO_CLIENT = """
    import django, os
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    django.setup()
    from django.test import Client
    from sitelog.agent import drops
    response = Client().get("/")
    dropped = drops.counts().get("buffer_unusable:django")
    print(response.status_code, response.content.decode(), dropped)
"""
CHECK = ("from django.core.management import execute_from_command_line; "
         "execute_from_command_line(['manage.py', 'check', '--settings=settings'])")


def django_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "settings.py").write_text(SETTINGS)
    (site / "urls.py").write_text(URLS)
    return site


def test_django_check_names_the_setting_and_requests_still_succeed(tmp_path) -> None:
    site = django_site(tmp_path)
    bad = unusable_paths(tmp_path)["parent_is_file"]
    check = run(CHECK, bad, site)
    assert check.returncode != 0
    assert "sitelog.E002" in check.stderr and "buffer.path" in check.stderr, check.stderr
    served = run(DJANGO_CLIENT, bad, site)
    assert served.returncode == 0, served.stderr
    assert served.stdout.split() == ["200", "hello", "1"]
    good = run(CHECK, tmp_path / "buffer.db", site)
    assert good.returncode == 0, good.stderr
    assert "sitelog.E002" not in good.stderr


HOLD_FRESH_FILE = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")  # a fresh, empty file that nobody else can read or write
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_fresh_file_locked_by_another_process_gives_a_warning_not_an_exception(tmp_path) -> None:
    path = tmp_path / "buffer.db"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_FRESH_FILE), str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        env_code = "import os; os.environ['SITELOG_BUFFER_BUSY_TIMEOUT_MS'] = '100'\n"
        result = run(env_code + textwrap.dedent(LOGGING_APP), path, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("served 50 "), result.stdout
    assert result.stderr.count("cannot be opened") == 1, result.stderr
