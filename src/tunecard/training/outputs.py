"""Run folders that are never half-written and never overwritten without asking.

Everything is written into a hidden sibling folder and renamed into place at the end, so a killed run
leaves no folder that looks complete, and an existing output is replaced only with `overwrite`. Resume
checkpoints live in another hidden sibling, `.<name>.checkpoints` (see checkpoint.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from tunecard.errors import OutputError


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

    def check(self, resuming: bool = False) -> None:
        """Fail before any work if the output cannot be written.

        Args:
            resuming: the run continues from checkpoints, so it passed this check when it started: an output
                folder it was allowed to replace then may be replaced now without --overwrite.
        """
        if self.path.exists() and not self.path.is_dir():
            raise OutputError("E401", "output exists and is not a folder.", path=self.path, fix="choose another --output.")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.overwrite and not resuming:
            raise OutputError("E402", "output folder is not empty; tunecard does not overwrite it without asking.",
                              path=self.path, fix="pass --overwrite, or choose another --output.")
        parent = self.path.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError("E403", f"cannot create the output's parent folder: {exc.strerror}.", path=parent) from None
        if not os.access(parent, os.W_OK | os.X_OK):  # found now, not after hours of training
            raise OutputError("E403", "no permission to write in the output's parent folder.", path=parent,
                              fix="fix its permissions, or choose another --output.")

    @property
    def checkpoints(self) -> Path:
        """The resume checkpoints beside the output (the same path in every process of a distributed run)."""
        return self.path.resolve().parent / f".{self.path.name}.checkpoints"

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
        staging = None
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=parent))
            yield staging
            _apply_umask(staging)
            self._replace(staging)
        except OSError as exc:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise OutputError("E404", f"writing the run failed ({exc.strerror or exc}); the previous output is kept.",
                              path=self.path, fix="free disk space or fix permissions, then re-run.") from None
        except BaseException:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise

    def _replace(self, staging: Path) -> None:
        """Move the finished folder into place; an old output is moved aside first and restored on failure."""
        old = None
        if self.path.exists():
            old = staging.parent / f".{self.path.name}.old-{staging.name.rsplit('-', 1)[-1]}"
            self.path.rename(old)
        try:
            staging.rename(self.path)
        except OSError:
            if old is not None:
                old.rename(self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard_scratch(self) -> None:
        """Remove the Trainer's scratch folder, whether the run succeeded or not."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def discard_checkpoints(self) -> None:
        """Remove the resume checkpoints (the run is finished, or there is nothing in them to resume)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def _apply_umask(folder: Path) -> None:
    """mkdtemp creates 0700 folders; the finished run gets the permissions any new folder would get."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
