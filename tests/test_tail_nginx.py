"""A real nginx (Debian package) on a loopback port writes the log the tail follows to MongoDB."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from sitelog.agent.tail import TailConfig, TailService
from sitelog.buffer import Buffer
from sitelog.shipper.ship import Shipper

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)")

LOG_FORMAT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
              '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" $host '
              'rt=$request_time urt="$upstream_response_time"')
CONF = """\
user root;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format timed '{log_format}';
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/html;
        access_log {prefix}/logs/access.log timed;
        location /gone {{ return 410; }}
        location /app {{ proxy_pass http://127.0.0.1:{dead_port}; }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """nginx in the foreground with a temp prefix; yields (base URL, access log, process)."""
    for name in ("html", "logs", "tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "html" / "index.html").write_text("<h1>hello</h1>\n")
    (tmp_path / "html" / "café.txt").write_text("crème\n")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(CONF.format(prefix=tmp_path, port=port, dead_port=free_port(),
                                log_format=LOG_FORMAT))
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-g",
                                "daemon off;"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "logs" / "access.log", process
    finally:
        process.terminate()
        process.wait(20)


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_nginx_access_log_lands_in_mongodb(make_config, mongo, nginx):
    base, log, process = nginx
    config = make_config()
    buffer = Buffer.from_config(config.buffer)
    entry = TailConfig(path=str(log), format="nginx", log_format=LOG_FORMAT,
                       rotate_wait_seconds=0.5, poll_interval_seconds=0.2,
                       fields={"server": "web1"})
    service = TailService(buffer, [entry], config.agent.trusted_proxies).start()
    try:
        assert get(f"{base}/") == 200
        assert get(f"{base}/caf%C3%A9.txt?x=1", headers={
            "User-Agent": 'say "hi" crème', "X-Forwarded-For": "203.0.113.5"}) == 200
        assert get(f"{base}/missing") == 404
        assert get(f"{base}/gone", method="POST") == 410
        assert get(f"{base}/app/") == 502
        os.rename(log, f"{log}.1")  # logrotate, then its postrotate: nginx reopens its logs
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while not log.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(3):
            assert get(f"{base}/", method="HEAD") == 200
        deadline = time.monotonic() + 30
        while buffer.stats().counters.get("tail_lines", 0) < 8:
            assert time.monotonic() < deadline, buffer.stats().counters
            time.sleep(0.1)
    finally:
        service.stop()
    shipper = Shipper.from_config(config)
    shipper.ship_pending()
    shipper.close()
    docs = list(mongo.requests.find({}, sort=[("seq", 1)]))
    assert [(doc["method"], doc["path"], doc["status"]) for doc in docs] == [
        ("GET", "/", 200), ("GET", "/café.txt", 200), ("GET", "/missing", 404),
        ("POST", "/gone", 410), ("GET", "/app/", 502),
        ("HEAD", "/", 200), ("HEAD", "/", 200), ("HEAD", "/", 200)]
    cafe = docs[1]
    assert cafe["ua"] == 'say "hi" crème' and cafe["query"] == "x=1"
    assert cafe["forwarded_for"] == "203.0.113.5"
    assert cafe["ip"] == "203.0.113.5"  # the peer 127.0.0.1 is a trusted proxy by default
    assert docs[0]["ip"] == "127.0.0.1" and docs[0]["host"] == "127.0.0.1"  # $host: no port
    assert docs[0]["bytes"] == len("<h1>hello</h1>\n") and docs[0]["protocol"] == "HTTP/1.1"
    assert all(doc["source"] == "tail" and doc["server"] == "web1" for doc in docs)
    assert all(isinstance(doc["duration_ms"], float) for doc in docs)
    assert "upstream_ms" in docs[4] and "upstream_ms" not in docs[0]
    assert buffer.dead_letters() == []
    assert json.loads(buffer.get_cursor(f"tail:{log}"))["ino"] == log.stat().st_ino
