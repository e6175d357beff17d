"""A real TLS-terminating reverse proxy in front of `rtflash relay serve --behind-proxy`: Debian's nginx.

Why nginx (not Caddy): in Debian's main archive (`nginx-light`, a few hundred kB), configured with one
file and no state (Caddy in Debian wants its own ACME storage and admin endpoint), and the most common
proxy in front of Python services, so its defaults (HTTP/1.0 upstream unless told, `Connection: close`,
`X-Forwarded-For` appended with `$proxy_add_x_forwarded_for`) are the ones users meet.

`Nginx` writes a config into a temp dir (its prefix: pid, logs, temp files), listens on 127.0.0.1 with
the given certificate and forwards to the relay's plain HTTP port, in the foreground (`daemon off`),
stopped after. As root (CI) it runs as `nobody` (runuser), with the temp dir handed to it: no daemon
of the system's, nothing under /etc or /var.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NGINX = "/usr/sbin/nginx"

CONFIG = """daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream relay {{
        server 127.0.0.1:{relay_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        location / {{
            proxy_pass http://relay;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def available() -> bool:
    return Path(NGINX).exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self, relay_port: int, cert: Path, key: Path) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="rtflash-nginx-"))
        self.port = _free_port()
        shutil.copy(cert, self.prefix / "cert.pem")
        shutil.copy(key, self.prefix / "key.pem")
        (self.prefix / "nginx.conf").write_text(CONFIG.format(prefix=self.prefix, port=self.port,
                                                              relay_port=relay_port))
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "nobody", "--"]
            for p in [self.prefix, *self.prefix.iterdir()]:
                shutil.chown(p, "nobody", "nogroup")
        os.chmod(self.prefix / "key.pem", 0o600)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/realtime/calls"

    def start(self, timeout: float = 15.0) -> Nginx:
        argv = [*self._as, NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"),
                "-c", str(self.prefix / "nginx.conf")]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}: {self.proc.stderr.read()} {self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen in {timeout} s: {self.errors()}")

    def errors(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def access(self) -> str:
        log = self.prefix / "access.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown (master and worker)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)
