"""``ebpfpy exporter``: ebpf_exporter's command line, on ebpfpy's loader.

The flags are ebpf_exporter's (``--config.dir``, ``--config.names``, ``--web.listen-address``
and the rest), so an existing unit file or container command line works after changing the
binary's name. It reads ``DIR/NAME.yaml`` and loads ``DIR/NAME.bpf.o`` for each name,
serves the metrics until SIGINT or SIGTERM, then detaches and unloads everything.
Flags ebpf_exporter has for things ebpfpy does not do (dropping capabilities, an external
BTF file) are refused with a clear message rather than ignored.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import click


def _log(text: str, stamp: bool) -> None:
    prefix = time.strftime("%Y/%m/%d %H:%M:%S ") if stamp else ""
    click.echo(prefix + text, err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config.dir", "config_dir", required=True, metavar="DIR", help="Config dir path.")
@click.option("--config.names", "config_names", required=True, metavar="NAMES",
              help="Comma separated names of configs to load.")
@click.option("--config.check", "config_check", is_flag=True, help="Check whether configs attach and exit.")
@click.option("--config.strict", "config_strict", is_flag=True, help="Make sure every probe registered.")
@click.option("--debug", is_flag=True, help="Enable debug (accepted; ebpfpy logs the same either way).")
@click.option("--log.no-timestamps", "no_timestamps", is_flag=True, help="Disable timestamps in log.")
@click.option("--web.listen-address", "listen_address", default=":9435", show_default=True, metavar="[ADDR]:PORT",
              help="The address to listen on for HTTP requests.")
@click.option("--web.telemetry-path", "telemetry_path", default="/metrics", show_default=True,
              help="Path under which to expose metrics.")
@click.option("--capabilities.keep", "capabilities", default="all", show_default=True,
              help="Capabilities to keep after attaching: only 'all' is supported.")
@click.option("--btf.path", "btf_path", default="", help="Optional BTF file path (not supported).")
def exporter(config_dir, config_names, config_check, config_strict, debug, no_timestamps, listen_address,
             telemetry_path, capabilities, btf_path):
    """Export metrics from clang-built BPF objects, configured as for Cloudflare's ebpf_exporter."""
    from ebpfpy.exporter.config import ConfigError, load_configs
    from ebpfpy.exporter.exporter import Exporter, ExporterError
    from ebpfpy.exporter.serve import MetricsServer, ServeError, require

    stamp = not no_timestamps
    if capabilities != "all":
        raise click.ClickException("--capabilities.keep: dropping capabilities is not supported; use 'all'")
    if btf_path:
        raise click.ClickException("--btf.path: an external BTF file is not supported; the kernel's own is used")
    if listen_address.startswith("fd://"):
        raise click.ClickException("--web.listen-address: systemd socket activation (fd://) is not supported")
    started = time.monotonic()
    try:
        require("prometheus_client", "ebpfpy exporter")
        configs = load_configs(config_dir, config_names)
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        server = None if config_check else MetricsServer(listen_address, registry)
    except (ConfigError, ServeError) as err:
        raise click.ClickException(str(err)) from None
    try:
        with Exporter(configs, strict=config_strict, log=lambda text: _log(text, stamp)) as exp:
            _log(f"Started with {len(configs)} programs found in the config in "
                 f"{round((time.monotonic() - started) * 1000)}ms", stamp)
            if config_check:
                _log("Config check successful, exiting", stamp)
                return
            registry.register(exp)
            _log(f"Listening on {listen_address} (port {server.port})", stamp)
            _wait_for_signal()
            server.stop()  # no scrape reads the maps while they are released
    except ExporterError as err:
        raise click.ClickException(str(err)) from None
    finally:
        if server is not None:
            server.stop()


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    sys.stderr.flush()
