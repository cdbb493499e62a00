"""The README stays one page a user can follow: its first two commands set everything up, every tunecard command
in it names a real subcommand and real options, every link and file it names exists, and neither it nor docs/
names the flat speed keys of earlier versions."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from tunecard.cli import app
from tunecard.config import MOVED_TO_SPEED_OPTIONS, REMOVED_LEVERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_lines(text: str) -> list[str]:
    """Lines of the fenced code blocks, comments removed, backslash continuations joined."""
    lines, inside, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            line = pending + re.sub(r"\s+#.*$", "", line).strip()
            pending = line[:-1] + " " if line.endswith("\\") else ""
            if line and not pending:
                lines.append(line)
    return lines


def _command(words: list[str]):
    """The click command a `tunecard ...` line runs, and the words after it."""
    command = typer.main.get_command(app)
    words = words[1:]
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def test_readme_is_one_page():
    assert len(README.splitlines()) <= 150


def test_the_first_two_commands_set_everything_up():
    assert _code_lines(README)[:2] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


TUNECARD_LINES = [line for line in _code_lines(README) if "tunecard " in line and not line.startswith("pip ")]


@pytest.mark.parametrize("line", TUNECARD_LINES)
def test_every_tunecard_command_names_real_options(line):
    words = shlex.split(line.split("|")[-1].strip())
    if words[0] == "torchrun":  # torchrun ... -m tunecard train ...
        words = words[words.index("tunecard"):]
    assert words[0] == "tunecard", line
    command, rest = _command(words)
    assert not hasattr(command, "commands"), f"{line}: no such subcommand"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    used = {word.split("=")[0] for word in rest if word.startswith("-")}
    assert used <= known, f"{line}: unknown options {sorted(used - known)}"


def test_files_and_links_named_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / target).exists(), target
    for path in re.findall(r"(?:benchmarks|examples|scripts|src)/[\w./-]+\.(?:py|yaml|sh|md)", README):
        assert (ROOT / path).exists(), path


def test_every_doc_page_is_linked():
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", README))
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert pages <= linked, f"not linked from the README: {sorted(pages - linked)}"


OLD = "|".join((*MOVED_TO_SPEED_OPTIONS, *REMOVED_LEVERS))
OLD_DASHED = OLD.replace("_", "[-_]")
# A flat key given a value (`packing: true`, `fast_dropout=false`, "`packing` true|false") or a flag (--packing,
# --no-fast-dropout); under speed_options (`speed_options.packing=false`, `speed_options: {packing: false}`, an
# indented YAML line) it is today's key.
OLD_SETTING = re.compile(rf"(?<!speed_options\.)(?<!\{{)\b({OLD})(`?\s*[:=]\s*|`\s+)(true|false|on|off)\b"
                         rf"|--(no-)?({OLD_DASHED})\b")


def _old_settings(text: str) -> list[str]:
    found = []
    for match in OLD_SETTING.finditer(text):
        line = text[text.rfind("\n", 0, match.start()) + 1:match.start()]
        if not (line.strip() == "" and line):  # an indented YAML line (under speed_options:) is not flagged
            found.append(match.group(0))
    return found


@pytest.mark.parametrize("page", ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))])
def test_no_old_flat_speed_settings(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    found = _old_settings(text)
    assert not found, f"{page} sets speed keys of earlier versions (now speed: auto|off, speed_options.*): {found}"


def test_the_old_setting_pattern_finds_what_it_should():
    for old in ("packing: false", "--set fast_dropout=false", "`sparse_embedding` true|false", "--no-fuse-qkv",
                "--packing"):
        assert _old_settings(old), old
    for new in ("speed_options.packing: false", "--set speed_options.fast_dropout=false", "packed batches",
                "speed: off", "speed_options: {packing: false}", "speed_options:\n  fuse_qkv: false"):
        assert not _old_settings(new), new
