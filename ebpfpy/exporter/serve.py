"""The HTTP side of both exporters: where to listen, and a server thread to stop cleanly.

Both ``pybpftrace --metrics`` and ``ebpfpy exporter`` take Prometheus's address form,
``ADDR:PORT``, with ``:PORT`` meaning every address (IPv6 and IPv4 where the kernel has
IPv6, as Go's listener does). The socket is bound before anything is loaded into the kernel,
so a port in use fails first, with nothing to undo. Scrapes are served from a thread;
``MetricsServer.stop()`` shuts it down and waits for it, so the caller can release the maps
knowing no scrape is still reading them.
"""
from __future__ import annotations

import socket
import threading

INSTALL_HINT = "pip install 'ebpfpy[metrics]'"


class ServeError(Exception):
    """A listen address that cannot be used, or a missing optional package: one line for the user."""


def require(module: str, purpose: str):
    """Import an optional dependency (``prometheus_client``, ``yaml``), or say what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"yaml": "PyYAML"}.get(module, module)
        raise ServeError(f"{purpose} needs the Python package {package}: {INSTALL_HINT}") from None


def parse_address(text: str) -> tuple[str, int]:
    """``"ADDR:PORT"``, ``"[V6ADDR]:PORT"`` or ``":PORT"`` -> (host, port); host "" is every address."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ServeError(f"listen address {text!r}: expected ADDR:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text, 10)
    except ValueError:
        raise ServeError(f"listen address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ServeError(f"listen address {text!r}: port {port} is out of range")
    return host, port


class MetricsServer:
    """prometheus_client's WSGI app on a threading server: ``/metrics`` (any path) gives the
    registry's text format, OpenMetrics when the scraper asks for it."""

    def __init__(self, address: str, registry):
        prometheus_client = require("prometheus_client", "serving metrics")
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from prometheus_client.exposition import ThreadingWSGIServer

        class Quiet(WSGIRequestHandler):
            def log_message(self, format, *args):  # no line per scrape on stderr
                pass

        host, port = parse_address(address)
        self.address = address
        app = prometheus_client.make_wsgi_app(registry)
        last_error = None
        for family, bind in _candidates(host, port):
            server_class = type("Server", (ThreadingWSGIServer,), {"address_family": family})
            try:
                self.httpd = make_server(bind, port, app, server_class, handler_class=Quiet)
                break
            except OSError as err:
                last_error = err
        else:
            raise ServeError(f"cannot listen on {address}: {last_error.strerror or last_error}")
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, wait for the server thread, close the socket (again: a no-op)."""
        httpd, self.httpd = getattr(self, "httpd", None), None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _candidates(host: str, port: int) -> list:
    """(family, address) pairs to try binding: every address is IPv6's "::" (which takes IPv4
    too) and IPv4's "0.0.0.0" where IPv6 is off; a name or address resolves to its families."""
    if host == "":
        return [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")] if socket.has_ipv6 else \
            [(socket.AF_INET, "0.0.0.0")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return [(family, sockaddr[0]) for family, _, _, _, sockaddr in infos]
