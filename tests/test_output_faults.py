"""Output folders (issue 29, items 6 and 8): a killed write's leftovers are cleaned by the next run, --overwrite
never deletes a file tunecard did not write, the run's files get the usual permissions, and a disk that fills
while a safetensors file is written is E404 like every other failed write."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
from conftest import ROOT, quick_ner_values
from rich.console import Console
from safetensors import SafetensorError

from tunecard.config import TrainConfig
from tunecard.errors import OutputError
from tunecard.pipeline import train
from tunecard.training.outputs import _HOST, RunFolder

DISK_FULL = {
    # what safetensors raises when the disk fills (measured on a 64 KiB tmpfs): not an OSError
    "safetensors": lambda: SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
    "OSError": lambda: OSError(errno.ENOSPC, "No space left on device"),
}


def _console() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=400), text


def _run_folder(path: Path, card: str = "earlier card") -> Path:
    """A folder as an earlier run left it."""
    path.mkdir(parents=True)
    for name, text in (("train_config.yaml", "task: ner\n"), ("README.md", card), ("metrics.json", "{}")):
        (path / name).write_text(text, encoding="utf-8")
    (path / "plots").mkdir()
    (path / "plots" / "loss.png").write_bytes(b"png")
    return path


# --- leftovers of killed runs ------------------------------------------------------------------------------------

def _killed_while_writing(output: Path) -> Path:
    """A process killed (SIGKILL) in the middle of the final write: its staging folder stays behind."""
    code = ("import os, signal, sys\n"
            "from tunecard.training.outputs import RunFolder\n"
            "with RunFolder(sys.argv[1]).writing() as folder:\n"
            "    (folder / 'model.safetensors').write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.run([sys.executable, "-c", code, str(output)], env=env)
    assert process.returncode == -signal.SIGKILL
    [left] = output.parent.glob(f".{output.name}.partial-*")
    return left


def test_a_killed_final_write_is_cleaned_by_the_next_run(tiny_bert_cased, tmp_path):
    output = tmp_path / "run"
    left = _killed_while_writing(output)
    assert left.name.startswith(f".run.partial-{_HOST}-") and (left / "model.safetensors").is_file()
    live = tmp_path / f".run.partial-{_HOST}-{os.getpid()}-live0000"  # a process that is still writing
    other_host = tmp_path / ".run.scratch-another.host-12345-abcd1234"  # a process on another machine
    older_version = tmp_path / ".run.partial-k3j4h5x_"  # named before the process was recorded: a killed run's
    unrelated = tmp_path / ".runner.partial-1"
    for folder in (live, other_host, older_version, unrelated):
        folder.mkdir()
    console, text = _console()
    result = train(TrainConfig(**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1)), progress=False,
                   console=console)
    assert (result.output / "README.md").is_file()
    assert not left.exists() and not older_version.exists()
    assert live.is_dir() and other_host.is_dir() and unrelated.is_dir()
    assert f"removed {left.name} beside {output}: left by a killed run" in text.getvalue()


def test_a_kill_between_the_two_renames_gets_the_old_output_back(tmp_path):
    output = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = _run_folder(tmp_path / f".run.old-{_HOST}-{int(dead.stdout)}-abcd1234")
    console, text = _console()
    done = RunFolder(output, console=console).clean_stale()
    assert not old.exists() and (output / "README.md").read_text(encoding="utf-8") == "earlier card"
    assert done == [f"restored {output} from {old.name}: a run was killed while replacing it"]
    assert "restored" in text.getvalue()


# --- --overwrite and the user's own files ------------------------------------------------------------------------

def test_overwrite_refuses_to_delete_a_users_file_before_anything_runs(tmp_path):
    output = _run_folder(tmp_path / "run")
    (output / "notes.txt").write_text("my notes", encoding="utf-8")
    values = {**quick_ner_values(tmp_path / "never-loaded", tmp_path), "train": str(tmp_path / "never-read.conll")}
    config = TrainConfig(**values)
    with pytest.raises(OutputError) as caught:
        train(config, overwrite=True, progress=False)
    error = caught.value
    assert error.code == "E407" and "notes.txt" in error.message and "nothing was touched" in error.message
    assert (output / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no checkpoints, no staging folder
    with pytest.raises(OutputError) as caught:  # without --overwrite: E402, which says --overwrite would not do
        train(config, progress=False)
    assert caught.value.code == "E402" and "notes.txt" in caught.value.fix


def test_overwrite_refuses_a_folder_tunecard_did_not_write(tmp_path):
    output = tmp_path / "someones-model"
    output.mkdir()
    for name in ("config.json", "model.safetensors", "README.md"):  # names a run has too, but no run's config
        (output / name).write_text("theirs", encoding="utf-8")
    with pytest.raises(OutputError) as caught:
        RunFolder(output, overwrite=True).check()
    assert caught.value.code == "E407" and "not a tunecard run folder" in caught.value.message
    assert "README.md" in caught.value.message


def test_overwrite_replaces_a_run_with_its_report_and_export(tiny_bert_cased, tmp_path):
    output = _run_folder(tmp_path / "run")
    (output / "report.html").write_text("<html>", encoding="utf-8")  # tunecard report
    (output / "onnx").mkdir()  # tunecard export
    (output / "onnx" / "model.onnx").write_bytes(b"onnx")
    result = train(TrainConfig(**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1)), overwrite=True,
                   progress=False)
    assert not (result.output / "report.html").exists() and not (result.output / "onnx").exists()
    assert (result.output / "README.md").read_text(encoding="utf-8") != "earlier card"


def test_a_file_put_into_the_output_during_the_run_is_kept(tmp_path):
    output = _run_folder(tmp_path / "run")
    folder = RunFolder(output, overwrite=True)
    folder.check()
    (output / "notes.txt").write_text("written while it trained", encoding="utf-8")
    with folder.writing() as staging:
        (staging / "README.md").write_text("new card", encoding="utf-8")
        (staging / "train_config.yaml").write_text("task: ner\n", encoding="utf-8")
    assert (output / "README.md").read_text(encoding="utf-8") == "new card"
    assert (output / "notes.txt").read_text(encoding="utf-8") == "written while it trained"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_users_file_named_like_a_run_file_stops_the_write(tmp_path):
    output = tmp_path / "run"
    folder = RunFolder(output)
    folder.check()  # nothing there yet
    output.mkdir()
    (output / "README.md").write_text("the user's own readme", encoding="utf-8")  # made while the run trained
    with pytest.raises(OutputError) as caught:
        with folder.writing() as staging:
            (staging / "README.md").write_text("card", encoding="utf-8")
    assert caught.value.code == "E407" and "README.md" in caught.value.message
    assert (output / "README.md").read_text(encoding="utf-8") == "the user's own readme"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --- permissions and disk full -----------------------------------------------------------------------------------

def test_every_file_of_the_run_gets_the_umask_mode(tiny_bert_cased, tmp_path):
    umask = 0o027  # 0640 files, 0750 folders: neither the 0644 of the usual umask nor safetensors' 0600
    previous = os.umask(umask)
    try:
        result = train(TrainConfig(**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1)), progress=False)
    finally:
        os.umask(previous)
    modes = {str(path.relative_to(result.output)): path.stat().st_mode & 0o777
             for path in [result.output, *result.output.rglob("*")]}
    assert modes["model.safetensors"] == 0o666 & ~umask  # safetensors itself writes 0600
    assert {mode for name, mode in modes.items() if not (result.output / name).is_dir()} == {0o666 & ~umask}
    assert {mode for name, mode in modes.items() if (result.output / name).is_dir()} == {0o777 & ~umask}


@pytest.mark.parametrize("kind", sorted(DISK_FULL))
def test_disk_full_while_the_model_file_is_written_is_E404(tiny_bert_cased, tmp_path, monkeypatch, kind):
    output = _run_folder(tmp_path / "run")

    def disk_full(*args, **kwargs):
        raise DISK_FULL[kind]()

    monkeypatch.setattr(safetensors.torch, "serialize_file", disk_full)  # every save_file goes through it
    config = TrainConfig(**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1))  # save_strategy: no
    with pytest.raises(OutputError) as caught:
        train(config, overwrite=True, progress=False)
    assert caught.value.code == "E404" and "No space left on device" in caught.value.message
    assert "previous output is kept" in caught.value.message
    assert (output / "README.md").read_text(encoding="utf-8") == "earlier card"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_disk_full_while_a_checkpoint_is_written_is_E404(tiny_bert_cased, tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors.torch, "serialize_file", lambda *a, **k: (_ for _ in ()).throw(
        DISK_FULL["safetensors"]()))
    config = TrainConfig(**{**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1), "save_strategy": "epoch"})
    with pytest.raises(OutputError) as caught:
        train(config, progress=False)
    error = caught.value
    assert error.code == "E404" and "writing a resume checkpoint failed (No space left on device" in error.message
    assert "run the same command again" in error.fix and error.path == str(RunFolder(config.output).checkpoints)
    assert not (tmp_path / "run").exists()
