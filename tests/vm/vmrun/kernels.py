"""Debian cloud kernels from the configured apt archive: which exist, and fetching one.

Only `apt-cache` (local package lists) and `apt-get download` are used, so the
runner needs no network beyond the Debian mirror apt already talks to. The
`-unsigned` package carries the same vmlinuz as the signed one without the
signing shim's dependencies, so it is preferred when present.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

# Kernel series -> the meta package whose versions (one per archive suite) name the concrete kernels.
SERIES_META = {
    "6.1": "linux-image-cloud-amd64",
    "6.12": "linux-image-6.12-cloud-amd64",
}
DEFAULT_SERIES = "6.1"
_IMAGE = re.compile(
    r"^linux-image-(?P<release>[0-9][^ ]*-cloud-amd64)(?P<unsigned>-unsigned)?$"
)


@dataclass(frozen=True)
class Kernel:
    """A concrete kernel: `release` as `uname -r` prints it, and the package that ships its vmlinuz."""

    release: str
    package: str
    version: str

    @property
    def series(self) -> str:
        return ".".join(self.release.split(".")[:2])


class KernelNotFound(LookupError):
    pass


def _apt_show(package: str) -> list[dict[str, str]]:
    """All stanzas `apt-cache show` prints for a package (one per version in the archive)."""
    result = subprocess.run(
        ["apt-cache", "show", package], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return []
    return parse_stanzas(result.stdout)


def parse_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _version_key(version: str) -> tuple:
    return tuple(
        int(part) if part.isdigit() else part for part in re.split(r"[.~+-]", version)
    )


def releases_of_meta(meta: str) -> list[tuple[str, str]]:
    """(release, version) for each version of a meta package, newest first."""
    found = []
    for stanza in _apt_show(meta):
        for dep in stanza.get("Depends", "").split(","):
            match = _IMAGE.match(dep.strip().split(" ")[0])
            if match:
                found.append((match.group("release"), stanza["Version"]))
    found = list(dict.fromkeys(found))
    return sorted(found, key=lambda item: _version_key(item[1]), reverse=True)


def kernel_for_release(release: str) -> Kernel:
    for package in (f"linux-image-{release}-unsigned", f"linux-image-{release}"):
        stanzas = [s for s in _apt_show(package) if "Version" in s]
        if stanzas:
            newest = max(stanzas, key=lambda s: _version_key(s["Version"]))
            return Kernel(release=release, package=package, version=newest["Version"])
    raise KernelNotFound(f"no package in the apt archive ships kernel {release}")


def _all_cloud_releases() -> list[str]:
    result = subprocess.run(
        [
            "apt-cache",
            "search",
            "--names-only",
            r"^linux-image-[0-9].*-cloud-amd64(-unsigned)?$",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    releases = []
    for line in result.stdout.splitlines():
        match = _IMAGE.match(line.split(" - ")[0].strip())
        if match:
            releases.append(match.group("release"))
    return list(dict.fromkeys(releases))


def resolve(spec: str | None) -> list[Kernel]:
    """Kernels named by a --kernel value.

    None or "default": newest 6.1. A series ("6.1", "6.12"): its newest kernel.
    "all": every kernel the series' meta packages point at (newest of each suite,
    e.g. bookworm and bookworm-security). A release ("6.1.0-47" or
    "6.1.0-47-cloud-amd64") or a Debian package version ("6.1.170-3"): that one.
    """
    spec = (spec or "default").strip()
    if spec == "default":
        spec = DEFAULT_SERIES
    if spec in SERIES_META:
        releases = releases_of_meta(SERIES_META[spec])
        if not releases:
            raise KernelNotFound(
                f"apt knows no {SERIES_META[spec]}; run apt-get update"
            )
        return [kernel_for_release(releases[0][0])]
    if spec == "all":
        releases = [
            rel for meta in SERIES_META.values() for rel, _ in releases_of_meta(meta)
        ]
        return [kernel_for_release(rel) for rel in dict.fromkeys(releases)]
    release = as_release(spec)
    if release:
        return [kernel_for_release(release)]
    for release in _all_cloud_releases():
        try:
            kernel = kernel_for_release(release)
        except KernelNotFound:
            continue
        if kernel.version == spec:
            return [kernel]
    raise KernelNotFound(
        f"--kernel {spec}: not a series ({', '.join(SERIES_META)}), release or package version in apt"
    )


# Release spellings (what `uname -r` prints, minus the flavour): 6.1's ABI form and 6.12's upstream+debN form.
_RELEASE = re.compile(r"\d+\.\d+\.0-\d+|\d+\.\d+\.\d+\+deb\d+")


def as_release(spec: str) -> str | None:
    """The full release a --kernel value names, or None when it is not a release (e.g. a package version)."""
    if spec.endswith("-cloud-amd64"):
        return spec
    if _RELEASE.fullmatch(spec):
        return f"{spec}-cloud-amd64"
    return None


def fetch(kernel: Kernel, cache_dir: str) -> str:
    """Path of the cached vmlinuz for `kernel`, downloading the package the first time."""
    target = os.path.join(cache_dir, "kernels", kernel.release)
    vmlinuz = os.path.join(target, "vmlinuz")
    if os.path.exists(vmlinuz):
        return vmlinuz
    os.makedirs(target, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        subprocess.run(
            [
                "apt-get",
                "download",
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                f"{kernel.package}={kernel.version}",
            ],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (deb,) = glob.glob(os.path.join(work, "*.deb"))
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(work, "x")], check=True)
        boot = os.path.join(work, "x", "boot")
        shutil.copy(
            os.path.join(boot, f"config-{kernel.release}"),
            os.path.join(target, "config"),
        )
        shutil.copy(os.path.join(boot, f"vmlinuz-{kernel.release}"), vmlinuz + ".part")
        os.replace(vmlinuz + ".part", vmlinuz)
    return vmlinuz
