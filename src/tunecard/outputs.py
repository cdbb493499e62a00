"""Run folders that are never half-written and never overwritten without asking.

Everything is written into a hidden sibling folder and renamed into place at the end, so a killed run
leaves no folder that looks complete, and an existing output is replaced only with `overwrite`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from .errors import OutputError


class RunFolder:
    """The output folder of a run.

    Args:
        path: where the run should end up.
        overwrite: allow replacing a non-empty folder.
    """

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        self.overwrite = overwrite
        self._scratch: Path | None = None

    def check(self) -> None:
        """Fail before any work if the output cannot be written."""
        if self.path.exists() and not self.path.is_dir():
            raise OutputError("E401", "output exists and is not a folder.", path=self.path, fix="choose another --output.")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.overwrite:
            raise OutputError("E402", "output folder is not empty; tunecard does not overwrite it without asking.",
                              path=self.path, fix="pass --overwrite, or choose another --output.")
        parent = self.path.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError("E403", f"cannot create the output's parent folder: {exc.strerror}.", path=parent) from None

    @property
    def scratch(self) -> Path:
        """A temporary folder beside the output for the Trainer's own files (removed at the end)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.scratch-", dir=self.path.resolve().parent))
        return self._scratch

    @contextlib.contextmanager
    def writing(self):
        """Yield a temporary folder to write into; on success it replaces the output in one rename."""
        parent = self.path.resolve().parent
        staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=parent))
        try:
            yield staging
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError("E404", f"writing the run failed ({exc.strerror or exc}); the previous output is kept.",
                              path=self.path, fix="free disk space or fix permissions, then re-run.") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _apply_umask(staging)
        old = None
        if self.path.exists():
            old = parent / f".{self.path.name}.old-{staging.name.rsplit('-', 1)[-1]}"
            self.path.rename(old)
        staging.rename(self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard_scratch(self) -> None:
        """Remove the Trainer's scratch folder, whether the run succeeded or not."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _apply_umask(folder: Path) -> None:
    """mkdtemp creates 0700 folders; the finished run gets the permissions any new folder would get."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
