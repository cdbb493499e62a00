"""Run folders that are never half-written and never overwritten without asking.

Everything is written into a hidden sibling folder and renamed into place at the end, so a killed run
leaves no folder that looks complete, and an existing output is replaced only with `overwrite`, and only when
everything in it is what tunecard writes into a run folder (a user's own files are never deleted). Resume
checkpoints live in another hidden sibling, `.<name>.checkpoints` (see checkpoint.py).

The hidden siblings a run makes (`.<name>.partial-*` for the final write, `.<name>.scratch-*` for the Trainer,
`.<name>.old-*` for the replaced output) carry the host and process id that made them: a later run of the same
output removes those whose process is gone (a killed run's), and says so.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from tunecard.errors import OutputError

# What tunecard writes into a run folder (train: the model, tokenizer, config, history, metrics, card, plots,
# TensorBoard logs; `tunecard report`: report.html; `tunecard export`: onnx/). --overwrite replaces a folder only
# when everything in it matches one of these.
RUN_FOLDER_ENTRIES = (
    "config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
    "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "chat_template.jinja", "chat_template.json", "vocab.txt", "vocab.json", "merges.txt",
    "*.model", "source.spm", "target.spm", "bpe.codes", "train_config.yaml", "history.json", "metrics.json",
    "README.md", "plots", "tensorboard", "report.html", ".report.html.*", "onnx",
)
RUN_FOLDER_MARKERS = ("train_config.yaml", "metrics.json")  # a folder with neither is not a tunecard run
_SIBLING_KINDS = ("partial", "scratch", "old")
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"
# Errors that mean a file could not be written (not a bug): they become E404.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed, when `exc` is a failed write (disk full, quota, permissions, I/O), else None.

    safetensors reports an I/O error as a SafetensorError ("Error while serializing: I/O error: No space left on
    device (os error 28)"), not an OSError; torch.save as a RuntimeError of its zip writer."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    if type(exc).__name__ == "SafetensorError" and "I/O error" in text:
        return text.split("I/O error:", 1)[1].strip()
    if isinstance(exc, RuntimeError) and ("PytorchStreamWriter failed" in text or "file write failed" in text):
        return "file write failed (disk full?)"
    return None


def tunecard_entry(name: str) -> bool:
    """Whether a run folder entry of this name is one tunecard writes."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RUN_FOLDER_ENTRIES)


def foreign_entries(folder: Path) -> list[str]:
    """The entries of an existing output folder that tunecard did not write (all of them, if it is no run)."""
    names = sorted(entry.name for entry in folder.iterdir())
    if not any(name in RUN_FOLDER_MARKERS for name in names):
        return names
    return [name for name in names if not tunecard_entry(name)]


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class RunFolder:
    """The output folder of a run.

    Args:
        path: where the run should end up.
        overwrite: allow replacing a non-empty folder.
    """

    def __init__(self, path: str | Path, overwrite: bool = False, console=None):
        self.path = Path(path)
        self.overwrite = overwrite
        self.console = console
        self._scratch: Path | None = None

    def _note(self, text: str) -> None:
        if self.console is not None:
            from rich.markup import escape

            self.console.print(f"[yellow]note[/] {escape(text)}", highlight=False)

    def _sibling_prefix(self, kind: str) -> str:
        """`.NAME.KIND-HOST-PID-`: the host and process that made a hidden sibling folder."""
        return f".{self.path.name}.{kind}-{_HOST}-{os.getpid()}-"

    def clean_stale(self) -> list[str]:
        """Remove the hidden siblings a killed run of this output left (main process only, before `check`).

        A `partial` or `scratch` folder whose process is gone is removed; an `old` one (the previous output, moved
        aside just before the new one was renamed into place) is removed when the output exists, and renamed back
        into place when the kill came between the two renames. Folders of a live process, or of another host, are
        left alone. Returns what was done (also printed on the console)."""
        parent = self.path.resolve().parent
        done = []
        if not parent.is_dir():
            return done
        pattern = re.compile(rf"\.{re.escape(self.path.name)}\.({'|'.join(_SIBLING_KINDS)})-(.*)")
        for sibling in sorted(parent.iterdir()):
            match = pattern.fullmatch(sibling.name)
            if not match or not sibling.is_dir():
                continue
            owner = re.fullmatch(r"(.+)-(\d+)-[^-]+", match.group(2))  # HOST-PID-RANDOM; earlier versions: RANDOM
            if owner and (owner.group(1) != _HOST or _process_alive(int(owner.group(2)))):
                continue
            if match.group(1) == "old" and not self.path.exists():
                sibling.rename(self.path)
                done.append(f"restored {self.path} from {sibling.name}: a run was killed while replacing it")
                continue
            shutil.rmtree(sibling, ignore_errors=True)
            done.append(f"removed {sibling.name} beside {self.path}: left by a killed run")
        for line in done:
            self._note(line)
        return done

    def check(self, resuming: bool = False) -> None:
        """Fail before any work if the output cannot be written, or could be written only by deleting files
        tunecard did not write.

        Args:
            resuming: the run continues from checkpoints, so it passed this check when it started: an output
                folder it was allowed to replace then may be replaced now without --overwrite.
        """
        if self.path.exists() and not self.path.is_dir():
            raise OutputError("E401", "output exists and is not a folder.", path=self.path, fix="choose another --output.")
        if self.path.is_dir() and any(self.path.iterdir()):
            foreign = foreign_entries(self.path)
            if not self.overwrite and not resuming:
                extra = (f" (--overwrite replaces only what tunecard wrote, and this folder also holds "
                         f"{_listing(foreign)})") if foreign else ""
                raise OutputError("E402", "output folder is not empty; tunecard does not overwrite it without asking.",
                                  path=self.path, fix=f"pass --overwrite, or choose another --output{extra}.")
            if foreign:
                raise _foreign_error(self.path, foreign)
        parent = self.path.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError("E403", f"cannot create the output's parent folder: {exc.strerror}.", path=parent) from None
        if not os.access(parent, os.W_OK | os.X_OK):  # found now, not after hours of training
            raise OutputError("E403", "no permission to write in the output's parent folder.", path=parent,
                              fix="fix its permissions, or choose another --output.")

    @contextlib.contextmanager
    def writing_checkpoints(self):
        """Training: a checkpoint that cannot be written (disk full) is E404, and the run resumes later."""
        try:
            yield
        except Exception as exc:
            reason = write_failure(exc)
            if reason is None:
                raise
            raise OutputError("E404", f"writing a resume checkpoint failed ({reason}); the training up to the last "
                              "complete checkpoint is kept.", path=self.checkpoints,
                              fix="free disk space, then run the same command again: it resumes from there.") from None

    @property
    def checkpoints(self) -> Path:
        """The resume checkpoints beside the output (the same path in every process of a distributed run)."""
        return self.path.resolve().parent / f".{self.path.name}.checkpoints"

    @property
    def scratch(self) -> Path:
        """A temporary folder beside the output for the Trainer's own files (removed at the end)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=self._sibling_prefix("scratch"), dir=self.path.resolve().parent))
        return self._scratch

    @contextlib.contextmanager
    def writing(self):
        """Yield a temporary folder to write into; on success it replaces the output in one rename."""
        parent = self.path.resolve().parent
        staging = None
        try:
            staging = Path(tempfile.mkdtemp(prefix=self._sibling_prefix("partial"), dir=parent))
            yield staging
            _apply_umask(staging)
            self._replace(staging)
        except BaseException as exc:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            reason = write_failure(exc) if isinstance(exc, Exception) else None
            if reason is None:
                raise
            raise OutputError("E404", f"writing the run failed ({reason}); the previous output is kept.",
                              path=self.path, fix="free disk space or fix permissions, then re-run.") from None

    def _replace(self, staging: Path) -> None:
        """Move the finished folder into place; an old output is moved aside first and restored on failure.

        Files the user put into the output while this run trained (it was checked when the run started) are moved
        into the new folder, never deleted; one with the name of a file the run writes stops the write (E407)."""
        old, moved = None, []
        try:
            if self.path.exists():
                foreign = foreign_entries(self.path)
                clash = [name for name in foreign if (staging / name).exists()]
                if clash:
                    raise _foreign_error(self.path, clash)
                for name in foreign:
                    (self.path / name).rename(staging / name)
                    moved.append(name)
                old = staging.parent / (self._sibling_prefix("old") + staging.name.rsplit("-", 1)[-1])
                self.path.rename(old)
            staging.rename(self.path)
        except BaseException:
            if old is not None and old.exists() and not self.path.exists():
                old.rename(self.path)
            for name in moved:  # back where the user put them, before the staging folder is removed
                if (staging / name).exists():
                    (staging / name).rename(self.path / name)
            raise
        for name in moved:
            self._note(f"kept {name}, put into {self.path} during the run, in the new run folder")
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


def _foreign_error(path: Path, foreign: list[str]) -> OutputError:
    run = any((path / name).exists() for name in RUN_FOLDER_MARKERS)
    what = "files tunecard did not write" if run else "files, and it is not a tunecard run folder"
    return OutputError("E407", f"--overwrite would delete {what}: {_listing(foreign)}; nothing was touched.",
                       path=path, fix="move them out of the folder, or choose another --output.")


def _apply_umask(folder: Path) -> None:
    """mkdtemp creates 0700 folders and safetensors writes 0600 files; the finished run gets the permissions any
    new folder and file get (0755 and 0644 under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
