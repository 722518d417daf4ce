"""Tests of the package helpers on a tiny .deb built here (nothing is downloaded)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from nlpapps.corpora import debian

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def build_deb(tmp_path: Path) -> Path:
    """A package `demo` holding one catalog and one text file."""
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: nobody <n@example.org>\n"
        "Description: test package\n", encoding="utf-8")
    catalogs = tree / "usr/share/locale/de/LC_MESSAGES"
    catalogs.mkdir(parents=True)
    (catalogs / "demo.mo").write_bytes(b"catalog")
    (tree / "usr/share/doc").mkdir(parents=True)
    (tree / "usr/share/doc/README").write_text("docs", encoding="utf-8")
    deb = tmp_path / "debs" / "demo_1.0_all.deb"
    deb.parent.mkdir()
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


@needs_dpkg
def test_unpack_everything_or_only_matching_files(tmp_path):
    deb = build_deb(tmp_path)
    everything = debian.unpack(deb, tmp_path / "all")
    assert (everything / "usr/share/doc/README").read_text() == "docs"
    some = debian.unpack(deb, tmp_path / "some", ("usr/share/locale/*/LC_MESSAGES/*.mo",))
    assert [p.relative_to(some).as_posix() for p in some.rglob("*") if p.is_file()] == [
        "usr/share/locale/de/LC_MESSAGES/demo.mo"]


@needs_dpkg
def test_fetch_uses_the_cached_deb_and_unpacks_once(tmp_path, monkeypatch):
    build_deb(tmp_path)  # lands in tmp_path/debs, the cache's download folder
    real_which = shutil.which  # without apt-get, any download attempt would raise
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "apt-get" else
                        real_which(tool))
    root = debian.fetch(["demo"], tmp_path, ("usr/share/doc/*",))
    assert (root / "usr/share/doc/README").exists()
    (root / "usr/share/doc/README").unlink()
    debian.fetch(["demo"], tmp_path, ("usr/share/doc/*",))  # recorded as done: not unpacked
    assert not (root / "usr/share/doc/README").exists()


def test_missing_apt_get_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError) as error:
        debian.download("trans-de-en", tmp_path)
    message = str(error.value)
    assert "`apt-get` not found" in message and "Debian" in message and "\n" not in message
