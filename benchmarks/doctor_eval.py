"""How well `tunecard doctor` reads real Trainer cards: the doctor against hand-made labels.

    .venv/bin/python benchmarks/doctor_eval.py                 # the summary and the per-code table
    .venv/bin/python benchmarks/doctor_eval.py --cards         # plus, per card, what was missed or false
    .venv/bin/python benchmarks/doctor_eval.py --json          # every number as JSON

The corpus is tests/cards/real (index.yaml: each card's findings as a careful reviewer wrote them, in words that
do not name the doctor's codes); benchmarks/doctor_eval_map.yaml says which codes report each meaning. Printed:

- the share of major findings (error or warning in the labels) the doctor reports at error or warning level;
- errors on healthy cards, and false warnings: doctor findings at error or warning level that match none of the
  card's labels, as a share of all the doctor's error and warning findings;
- per code: precision (of its error / warning findings) and recall (of the major findings counted under it);
- per meaning: how many major findings there are and how many were matched;
- the most severe D701 (framework versions) seen: it must never be above info.

Nothing is timed. The doctor runs with this environment's installed versions, as `tunecard doctor` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "cards" / "real"
MAP = Path(__file__).with_name("doctor_eval_map.yaml")
MAJOR = ("error", "warning")


def load(corpus: Path = CORPUS, mapping: Path = MAP) -> tuple[list[dict], dict[str, list[str]]]:
    cards = yaml.safe_load((corpus / "index.yaml").read_text(encoding="utf-8"))
    codes = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    unknown = sorted({f["meaning"] for c in cards for f in c.get("findings") or []} - set(codes))
    if unknown:
        raise SystemExit(f"meanings with no entry in {mapping.name}: {', '.join(unknown)}")
    return cards, codes


def evaluate(cards: list[dict], codes: dict[str, list[str]], corpus: Path = CORPUS) -> dict:
    from tunecard.doctor import diagnose

    per_card = []
    emitted = Counter()  # code -> error/warning findings
    true_emitted = Counter()
    counted = Counter()  # code -> major labels counted under it (first code of the meaning)
    counted_hit = Counter()
    meanings = defaultdict(lambda: [0, 0])
    d701 = Counter()
    for card in cards:
        report = diagnose(corpus / card["file"])
        found = {}  # code -> most severe level
        for f in report.findings:
            if f.code == "D701":
                d701[f.severity] += 1
            rank = {"error": 0, "warning": 1, "info": 2}
            if f.code not in found or rank[f.severity] < rank[found[f.code]]:
                found[f.code] = f.severity
        loud = {code for code, level in found.items() if level in MAJOR}
        labels = card.get("findings") or []
        allowed = {code for f in labels if f.get("severity") != "none" for code in codes[f["meaning"]]}
        missed, matched = [], []
        for f in labels:
            if f.get("severity") not in MAJOR or not codes[f["meaning"]]:
                continue
            hit = bool(loud & set(codes[f["meaning"]]))
            (matched if hit else missed).append(f["meaning"])
            primary = codes[f["meaning"]][0]
            counted[primary] += 1
            counted_hit[primary] += hit
            meanings[f["meaning"]][0] += 1
            meanings[f["meaning"]][1] += hit
        false = sorted(code for code in loud if code not in allowed)
        for code in loud:
            emitted[code] += 1
            true_emitted[code] += code in allowed
        errors = sorted(code for code, level in found.items() if level == "error")
        per_card.append({
            "id": card["id"], "healthy": bool(card.get("healthy")), "matched": matched, "missed": missed,
            "false": {code: found[code] for code in false}, "errors": errors,
            "doctor": {f.code: f.severity for f in report.findings},
            "unparsed": list(report.unparsed),
        })
    major = sum(meanings[m][0] for m in meanings)
    hit = sum(meanings[m][1] for m in meanings)
    loud_total = sum(emitted.values())
    false_total = sum(len(c["false"]) for c in per_card)
    healthy_errors = [(c["id"], c["errors"]) for c in per_card if c["healthy"] and c["errors"]]
    per_code = {}
    for code in sorted(set(emitted) | set(counted)):
        per_code[code] = {
            "reported": emitted[code], "true": true_emitted[code],
            "precision": true_emitted[code] / emitted[code] if emitted[code] else None,
            "labelled": counted[code], "found": counted_hit[code],
            "recall": counted_hit[code] / counted[code] if counted[code] else None,
        }
    return {
        "cards": len(cards), "healthy_cards": sum(c["healthy"] for c in per_card),
        "major_findings": major, "matched": hit, "matched_share": hit / major if major else None,
        "doctor_error_warning_findings": loud_total, "false_findings": false_total,
        "false_share": false_total / loud_total if loud_total else 0.0,
        "errors_on_healthy_cards": healthy_errors, "d701": dict(d701),
        "per_code": per_code, "per_meaning": {m: {"labelled": a, "found": b} for m, (a, b) in sorted(meanings.items())},
        "per_card": per_card,
    }


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_summary(result: dict, cards: bool = False, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"cards: {result['cards']} ({result['healthy_cards']} healthy)")
    p(f"major findings matched at error/warning level: {result['matched']}/{result['major_findings']} "
      f"({_pct(result['matched_share'])})")
    p(f"errors on healthy cards: {len(result['errors_on_healthy_cards'])}"
      + "".join(f"\n  {card}: {', '.join(codes)}" for card, codes in result["errors_on_healthy_cards"]))
    p(f"false warnings: {result['false_findings']}/{result['doctor_error_warning_findings']} error/warning findings "
      f"({result['false_share']:.2%})")
    worst = next((s for s in ("error", "warning", "info") if result["d701"].get(s)), "none")
    p(f"D701 (framework versions): most severe {worst} ({result['d701']})")
    p("")
    p(f"{'code':6} {'reported':>8} {'true':>5} {'precision':>9} {'labelled':>8} {'found':>5} {'recall':>6}")
    for code, row in result["per_code"].items():
        p(f"{code:6} {row['reported']:>8} {row['true']:>5} {_pct(row['precision']):>9} {row['labelled']:>8} "
          f"{row['found']:>5} {_pct(row['recall']):>6}")
    p("")
    p(f"{'meaning':22} {'labelled':>8} {'found':>5}")
    for meaning, row in result["per_meaning"].items():
        p(f"{meaning:22} {row['labelled']:>8} {row['found']:>5}")
    if cards:
        p("")
        for card in result["per_card"]:
            if card["missed"] or card["false"]:
                p(f"{card['id']}: missed {card['missed'] or '-'}; false {card['false'] or '-'}; "
                  f"doctor {card['doctor']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="every number as JSON")
    parser.add_argument("--cards", action="store_true", help="per card: what was missed or false")
    args = parser.parse_args(argv)
    cards, codes = load()
    result = evaluate(cards, codes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_summary(result, cards=args.cards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
