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
import ssl
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
        self.relay_port = relay_port
        self.cert_der = ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
        shutil.copy(cert, self.prefix / "cert.pem")
        shutil.copy(key, self.prefix / "key.pem")
        self._as: list[str] = []
        self.port = 0
        self._configure()
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "nobody", "--"]
            for p in [self.prefix, *self.prefix.iterdir()]:
                shutil.chown(p, "nobody", "nogroup")
        os.chmod(self.prefix / "key.pem", 0o600)
        self.proc: subprocess.Popen | None = None

    def _configure(self) -> None:
        """A free port, written into the config (nginx binds it a moment later: see start)."""
        self.port = _free_port()
        (self.prefix / "error.log").unlink(missing_ok=True)  # what the next start says, only
        conf = self.prefix / "nginx.conf"
        conf.write_text(CONFIG.format(prefix=self.prefix, port=self.port, relay_port=self.relay_port))
        if self._as:
            shutil.chown(conf, "nobody", "nogroup")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/realtime/calls"

    def start(self, timeout: float = 15.0) -> Nginx:
        """Start nginx and return once it answers TLS on its port with our certificate. The port was free
        when picked; on this shared machine another process may bind it first: a connect to it then
        reaches that process (not ready: the certificate tells), and nginx gives up binding and exits
        ("Address already in use"): then a new port and a new start (bounded)."""
        end = time.monotonic() + timeout
        for _attempt in range(5):
            argv = [*self._as, NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"),
                    "-c", str(self.prefix / "nginx.conf")]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    why = f"{self.proc.stderr.read() if self.proc.stderr else ''} {self.errors()}"
                    if "Address already in use" not in why:
                        raise RuntimeError(f"nginx exited {self.proc.returncode}: {why}")
                    self._configure()
                    break
                if self._ours():
                    return self
                time.sleep(0.05)
            else:
                break
        self.stop()
        raise RuntimeError(f"nginx did not listen in {timeout} s: {self.errors()}")

    def _ours(self) -> bool:
        """True when the port answers a TLS handshake with this proxy's certificate (nginx is up on it)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # compared byte for byte below instead
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.getpeercert(binary_form=True) == self.cert_der
        except (OSError, ssl.SSLError):
            return False

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
