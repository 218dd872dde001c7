"""Prometheus export: ebpf_exporter's YAML configs over clang-built objects (``ebpfpy exporter``),
and the HTTP endpoint ``pybpftrace --metrics`` serves a script's maps on.

Nothing here is imported by the rest of ebpfpy unless asked for: ``prometheus_client`` and
``PyYAML`` are optional (``pip install ebpfpy[metrics]``), and a missing one is reported as
one ``ERROR:`` line saying what to install (``serve.require``).

* ``serve.py``: ``[ADDR]:PORT`` parsing, the HTTP server thread, the missing-package message;
* ``config.py``: ebpf_exporter's config files, read and checked (``ConfigError``);
* ``decoders.py``: its label decoders (bytes -> label value);
* ``metrics.py``: map entries -> labelled counters and histograms (pure: unit-tested);
* ``exporter.py``: objects loaded and attached, the collector, program run stats;
* ``ebpfpy.cli.exporter``: the ``ebpfpy exporter`` command with ebpf_exporter's flags.
"""
