"""The Docker test image's rootfs: every host file goes in as a regular entry, hard links included."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from tests.dockerctl import _RootFS, rootfs_tar


def entries(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_a_file_with_two_hard_links_is_added_twice_as_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "usr").mkdir()
    loader = tmp_path / "usr" / "ld.so"
    loader.write_bytes(b"\x7fELF loader")
    loader.chmod(0o755)
    os.link(loader, tmp_path / "ld.so")
    (tmp_path / "alias.so").symlink_to("usr/ld.so")
    assert loader.stat().st_nlink == 2

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        fs = _RootFS(tar)
        for path in ("usr/ld.so", "ld.so", "alias.so"):
            fs.add(str(tmp_path / path))

    found = entries(buffer.getvalue())
    root = str(tmp_path).lstrip("/")
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        for name in (f"{root}/usr/ld.so", f"{root}/ld.so"):
            assert found[name].type == tarfile.REGTYPE, name
            assert found[name].mode == 0o755, name
            extracted = tar.extractfile(name)
            assert extracted is not None
            assert extracted.read() == b"\x7fELF loader", name
    assert found[f"{root}/alias.so"].type == tarfile.SYMTYPE
    assert found[f"{root}/alias.so"].linkname == "usr/ld.so"


def test_the_test_image_carries_no_hard_link_entries() -> None:
    kinds = {member.type for member in entries(rootfs_tar()).values()}
    assert kinds <= {tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE}, kinds
