"""Debian packages as data: download with `apt-get download`, unpack with `dpkg-deb`.

Nothing is installed. A package is downloaded once into `<cache_dir>/debs/` and unpacked
into `<cache_dir>/root/` (the package's own paths, e.g. `root/usr/share/trans/de-en`).
Only these two functions touch the network or the package tools; every reader takes the
unpacked folder, so the readers can be used (and tested) on any copy of the files.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

# Refuse links and absolute paths in archives where Python supports it (3.11.4+).
_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

_NO_APT = (
    "`{tool}` not found: the corpora are built from Debian packages, so run this on "
    "Debian/Ubuntu (apt-get, dpkg-deb) or pass the folder of already unpacked files"
)


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(_NO_APT.format(tool=tool))
    return path


def download(package: str, cache_dir: Path) -> Path:
    """Returns the `.deb` of `package` in `<cache_dir>/debs/`, downloading it if missing."""
    debs = Path(cache_dir) / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    result = subprocess.run(
        [_require("apt-get"), "download", package],
        cwd=debs, capture_output=True, text=True, check=False,
    )
    found = sorted(debs.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise RuntimeError(
            f"apt-get download {package} failed ({reason}); "
            "run `apt-get update` (as root) once and try again"
        )
    return found[-1]


def unpack(deb: Path, root: Path, patterns: Sequence[str] = ()) -> Path:
    """Unpacks `deb` into `root`; with `patterns` (fnmatch, e.g. `*/LC_MESSAGES/*.mo`) only
    the matching files, streamed out of `dpkg-deb --fsys-tarfile`. Returns `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dpkg_deb = _require("dpkg-deb")
    if not patterns:
        subprocess.run([dpkg_deb, "-x", str(deb), str(root)], check=True)
        return root
    with subprocess.Popen([dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and any(fnmatch.fnmatch(name, p) for p in patterns):
                    member.name = name
                    tar.extract(member, root, **_SAFE)
    if proc.returncode != 0:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed (exit {proc.returncode})")
    return root


def fetch(packages: Iterable[str], cache_dir: Path, patterns: Sequence[str] = ()) -> Path:
    """Downloads and unpacks `packages` into `<cache_dir>/root/`; returns that folder.

    A package already unpacked (recorded in `root/.unpacked`) is skipped."""
    root = Path(cache_dir) / "root"
    root.mkdir(parents=True, exist_ok=True)
    done_file = root / ".unpacked"
    done = set(done_file.read_text().split()) if done_file.exists() else set()
    for package in packages:
        key = f"{package}:{','.join(patterns) or '*'}"
        if key in done:
            continue
        unpack(download(package, cache_dir), root, patterns)
        done.add(key)
        done_file.write_text("\n".join(sorted(done)) + "\n")
    return root
