"""D7xx environment: the framework versions a card lists against the installed ones."""

from __future__ import annotations

import re
from importlib import metadata

from ..findings import INFO, Finding, finding


# --- environment -----------------------------------------------------------------------------------------------

PACKAGES = {"Transformers": "transformers", "Pytorch": "torch", "Tokenizers": "tokenizers", "Datasets": "datasets"}


def installed_versions() -> dict[str, str]:
    """Installed versions of the packages a card lists (importlib.metadata; absent packages left out)."""
    found = {}
    for label, package in PACKAGES.items():
        try:
            found[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _version_tuple(text) -> tuple[int, ...] | None:
    match = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def check_versions(card_versions: dict, installed: dict) -> list[Finding]:
    """D701 (info): the framework versions the card or run lists, where they differ from this environment's.

    A difference is no defect of the card: it says which versions to install to reproduce the results (a major
    version apart, the model may load or behave differently)."""
    if not isinstance(card_versions, dict):
        return []
    breaking, minor = [], []
    for label in PACKAGES:
        a, b = card_versions.get(label), installed.get(label)
        ta, tb = _version_tuple(a), _version_tuple(b)
        if not ta or not tb:
            continue
        ta, tb = (ta + (0, 0))[:2], (tb + (0, 0))[:2]
        if ta == tb:
            continue
        line = f"{label} {a} (here {b})"
        if ta[0] != tb[0] or (ta[0] == 0 and ta[1] != tb[1]):
            (minor if label == "Datasets" else breaking).append(line)
        else:
            minor.append(line)
    if not breaking and not minor:
        return []
    pins = " ".join(f"'{PACKAGES[line.split()[0]]}=={'.'.join(map(str, _version_tuple(line.split()[1])[:2]))}.*'"
                    for line in breaking + minor)
    return [finding(
        "D701", "To reproduce, use these versions",
        "trained with " + "; ".join(breaking + minor) + "."
        + (" A major version apart, loading or results may differ." if breaking else ""),
        f"To reproduce the results, install them in a fresh environment: pip install {pins}.",
        severity=INFO, differences=breaking + minor, major=bool(breaking))]
