"""Where backups are kept: a local folder, or an object store through pyarrow's filesystems.

``Store.open("/var/backups/datamin")``, ``Store.open("file:///var/backups/datamin")``,
``Store.open("s3://bucket/datamin")`` or ``Store.open("gs://bucket/datamin")``: credentials come
from the environment the way pyarrow's S3/GCS filesystems read them. On a local disk every folder is
made 0700 and every file 0600 (the privacy officer's account only); on an object store, access is
the bucket's policy (say so in your runbook).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from datamin.exceptions import BackupError


def private_dirs(path: Path) -> None:
    """Creates ``path`` and any missing parents, each new one 0700 (whatever the umask)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)


@dataclass(frozen=True)
class Store:
    """A folder of backups on some filesystem. Paths inside are '/'-separated, relative to ``base``."""

    fs: pafs.FileSystem
    base: str
    url: str

    @classmethod
    def open(cls, where: str | os.PathLike[str]) -> Store:
        text = os.fspath(where)
        if "://" in text:
            try:
                fs, path = pafs.FileSystem.from_uri(text)
            except (pa.ArrowException, ValueError) as exc:
                raise BackupError(f"cannot open the backup location {text}: {exc}. For s3:// and gs:// "
                                  "configure the credentials pyarrow reads (e.g. AWS_* variables)") from None
            return cls(fs, path.rstrip("/") or "/", text)
        return cls(pafs.LocalFileSystem(), str(Path(text).resolve()), text)

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, rel: str = "") -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def child(self, name: str) -> Store:
        return Store(self.fs, self.path(name), f"{self.url.rstrip('/')}/{name}")

    def makedirs(self, rel: str = "") -> None:
        target = self.path(rel)
        if self.local:
            private_dirs(Path(target))
        else:
            self.fs.create_dir(target, recursive=True)

    def write(self, rel: str, data: bytes) -> None:
        """Writes a whole file (folders made as needed), 0600 on a local disk, fsynced there."""
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        if self.local:
            private_dirs(Path(parent))
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return
        self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(target) as out:
            out.write(data)

    def read(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return bytes(f.read())
        except FileNotFoundError:
            raise BackupError(f"{self.url}: {rel} is missing") from None
        except (OSError, pa.ArrowException) as exc:
            raise BackupError(f"{self.url}: cannot read {rel} ({exc})") from None

    def exists(self, rel: str = "") -> bool:
        return bool(self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound)

    def listdir(self, rel: str = "") -> list[str]:
        """Names of the entries directly under ``rel`` (empty when it does not exist)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return sorted(info.base_name for info in infos)

    def size(self, rel: str) -> int:
        return int(self.fs.get_file_info(self.path(rel)).size or 0)

    def delete_dir(self, rel: str) -> None:
        self.fs.delete_dir(self.path(rel))
