"""D6xx data: tiny splits, imbalance, rare and unseen labels, long examples, repaired tags, leakage."""

from __future__ import annotations

import math
from typing import Iterable

from ..cardparse import ParsedCard, entity_of
from tunecard.data.stats import leakage_counts
from tunecard.data.stats import normal_text as _normal_text  # noqa: F401 (re-exported by checks)

from ..findings import ERROR, INFO, WARNING, Finding, finding
from .common import (
    CLS,
    TINY_EVAL_ONE_VALUE,
    TINY_EVAL_ONE_VALUE_SMALL_TRAIN,
    IMBALANCE_RATIO,
    LEAKAGE_ERROR,
    LEAKAGE_WARNING,
    NER,
    RARE_LABEL_MIN,
    REPAIRED_WARNING,
    TINY_EVAL,
    TINY_TRAIN,
    TRUNCATED_WARNING,
    Eval,
    _finite,
    _num,
    fmt,
    fmt_int,
)


# --- data ------------------------------------------------------------------------------------------------------


def _label_counts(split: dict, task: str | None) -> dict:
    counts = split.get("entities") if task == NER else (split.get("classes") or split.get("labels"))
    if not isinstance(counts, dict):
        counts = split.get("entities") or split.get("classes") or split.get("labels") or {}
    return {str(k): v for k, v in counts.items() if _finite(v)} if isinstance(counts, dict) else {}


def check_run_data(task: str | None, data: dict) -> list[Finding]:
    """D601-D608 from metrics.json's `data`."""
    if not isinstance(data, dict):
        return []
    splits = {k: v for k, v in data.items() if isinstance(v, dict) and "examples" in v}
    found = []
    train = splits.get("train")
    unit = "entities" if task == NER else "examples"
    if train:
        n = _num(train.get("examples"))
        if n is not None and n < TINY_TRAIN:
            found.append(tiny_train(f"{fmt_int(n)} training examples", n))
        counts = _label_counts(train, task)
        if len(counts) >= 2:
            most = max(counts.items(), key=lambda item: item[1])
            least = min(counts.items(), key=lambda item: item[1])
            if least[1] > 0 and most[1] / least[1] >= IMBALANCE_RATIO:
                found.append(finding(
                    "D602", "Strong label imbalance in the training data",
                    f"training {unit}: '{most[0]}' {fmt_int(most[1])} vs '{least[0]}' {fmt_int(least[1])} "
                    f"({most[1] / least[1]:.0f}:1).",
                    "Look at per-label results rather than the average; weight the rare labels in the loss "
                    "(class_weights: balanced, or a weight per label) or oversample them, and collect more examples "
                    "of them.",
                    severity=INFO if task == NER else WARNING, most=most, least=least))
            rare = {k: v for k, v in counts.items() if v < RARE_LABEL_MIN}
            if rare:
                found.append(finding(
                    "D603", f"Labels with fewer than {RARE_LABEL_MIN} training {unit}",
                    ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(rare.items(), key=lambda kv: kv[1])) + ".",
                    "Scores for these labels are unreliable (a handful of evaluation examples decide them): collect more "
                    "examples or merge them with a related label.", labels=rare))
        seen = set(counts)
        unseen = []
        for name, split in splits.items():
            if name == "train" or not seen:
                continue
            missing = sorted(set(_label_counts(split, task)) - seen)
            if missing:
                unseen.append(f"{name}: {', '.join(missing)}")
        if unseen:
            found.append(finding(
                "D604", "Evaluation labels never seen in training",
                "; ".join(unseen) + ".",
                "The model cannot predict these: add training examples for them, or drop / map them in the evaluation "
                "data.", splits=unseen))
    long_lines, warn_long, repaired, warn_repaired = [], False, [], False
    for name, split in splits.items():
        encoding = split.get("encoding") if isinstance(split.get("encoding"), dict) else {}
        examples = _num(split.get("examples")) or 0
        if _num(encoding.get("windowed_examples")):
            long_lines.append(f"{name}: {fmt_int(encoding['windowed_examples'])} examples split into "
                              f"{fmt_int(encoding.get('windows'))} windows")
        if _num(encoding.get("truncated_examples")):
            t = _num(encoding["truncated_examples"])
            long_lines.append(f"{name}: {fmt_int(t)} of {fmt_int(examples)} texts truncated")
            warn_long = warn_long or (task != NER and examples and t / examples > TRUNCATED_WARNING)
        if _num(encoding.get("truncated_words")):
            long_lines.append(f"{name}: {fmt_int(encoding['truncated_words'])} words longer than a window kept only "
                              "their first subword")
        r = _num(split.get("repaired"))
        if r:
            repaired.append(f"{name}: {fmt_int(r)} of {fmt_int(examples)} examples")
            warn_repaired = warn_repaired or (examples and r / examples > REPAIRED_WARNING)
    if long_lines:
        found.append(finding(
            "D605", "Examples longer than max_length",
            "; ".join(long_lines) + ".",
            "Windows keep every word scored (NER); truncated classification texts lose their end: raise max_length "
            "(up to the model's limit) if the end of a text matters.",
            severity=WARNING if warn_long else INFO, details=long_lines))
    if repaired:
        found.append(finding(
            "D606", "Invalid tag sequences were repaired",
            "; ".join(repaired) + " had an I- tag with no entity to continue (read as a new entity, as conlleval does).",
            "Check the annotation or the tag scheme setting (IOB1 data read as IOB2 shows up this way).",
            severity=WARNING if warn_repaired else INFO, details=repaired))
    leak = data.get("leakage")
    leaks = [("validation", leak)] if isinstance(leak, dict) else []
    leaks += [(name, split.get("leakage")) for name, split in splits.items() if isinstance(split.get("leakage"), dict)]
    for name, value in leaks:
        f = leakage_finding(value.get("duplicates"), value.get("eval_examples"), name)
        if f:
            found.append(f)
    small_eval = [f"{name}: {fmt_int(split.get('examples'))} examples" for name, split in splits.items()
                  if name != "train" and _finite(split.get("examples")) and split["examples"] < TINY_EVAL]
    if small_eval:
        found.append(tiny_eval(small_eval))
    return found


def tiny_train(what: str, n: float) -> Finding:
    return finding(
        "D601", "A tiny training set",
        f"{what} (fewer than {TINY_TRAIN}).",
        "Fine-tuning this few examples gives unstable results (seed-dependent): collect more data, train several "
        "seeds and report the spread, or start from a model already fine-tuned on a related task.",
        examples=n)


def tiny_eval(lines: list[str], **data) -> Finding:
    return finding(
        "D608", "A very small evaluation set",
        "; ".join(lines) + f" (under {TINY_EVAL}: one example moves accuracy by more than {1 / TINY_EVAL:.0%}).",
        "Scores this small are noisy: evaluate on a few hundred examples or more, or report a confidence interval.",
        splits=lines, **data)


def eval_size_from_values(cells, one_value_limit: int = TINY_EVAL_ONE_VALUE) -> tuple[int, list[str]] | None:
    """The evaluation set's size read off accuracy values as printed: every accuracy is correct / n, so values that
    are all multiples of 1/n for a small n (within half a unit of the last printed digit) give n away: 0.5493,
    0.5634, 0.5352 are 39, 40 and 38 of 71.

    Needs at least two distinct values other than 0, 0.5 and 1 (these fit any even n), printed as the Trainer does
    (up to 4 decimals, trailing zeros dropped; values all rounded by hand to fewer decimals prove nothing), and then
    answers for n up to TINY_EVAL; a single such value answers only for n up to TINY_EVAL_ONE_VALUE (any value
    is k/n for some n below 100 within rounding, three in ten; for n up to 12, one in 200), or up to
    ``one_value_limit`` where the caller has other evidence of a small data set (TINY_EVAL_ONE_VALUE_SMALL_TRAIN, 30,
    under a tiny training set: one in 36 values by chance). The true size can be a multiple of n. Returns
    (n, ['39/71', ...]) or None."""
    cells = [c for c in cells if c is not None and c.kind == "number" and c.decimals is not None]
    decimals = {c.decimals for c in cells}
    if not cells or (len(decimals) == 1 and min(decimals) < 4):
        return None  # hand-rounded to a few decimals: too coarse to tell k/n from any other value
    values = {}
    for cell in cells:
        v = cell.value
        if not 0 < v < 1 or abs(v - 0.5) < 1e-9:
            continue
        # the Trainer prints round(v, 4) without trailing zeros: '0.725' is 0.7250, exact to 4 decimals
        values[round(v, 8)] = 0.5 * 10.0 ** -max(cell.decimals, 4) + 1e-9
    if not values:
        return None
    end = TINY_EVAL if len(values) >= 2 else one_value_limit + 1  # fewer than TINY_EVAL; one value: up to the limit
    for n in range(2, end):
        if all(abs(round(v * n) / n - v) <= tol for v, tol in values.items()):
            return n, [f"{round(v * n)}/{n}" for v in sorted(values)]
    return None


def card_eval_size(card: ParsedCard, bound: tuple[Eval, int, float] | None) -> tuple[int, list[str]] | None:
    """The evaluation set's size read off a card's accuracy values (:func:`eval_size_from_values`); a single value
    answers for n up to TINY_EVAL_ONE_VALUE_SMALL_TRAIN when the card's training set is tiny too (a tiny data set
    makes a tiny evaluation split likely, so less evidence is needed). ``bound``: :func:`card_train_bound`'s answer
    for this card."""
    if not card.table:
        return None
    limit = TINY_EVAL_ONE_VALUE_SMALL_TRAIN if bound and bound[2] < TINY_TRAIN else TINY_EVAL_ONE_VALUE
    tiny_train = bool(bound and bound[2] < TINY_TRAIN)
    # under a tiny training set a tiny evaluation split is likely, and a one-class row's share still tells it
    return eval_size_from_values([row.get("accuracy") for row in card.table.rows
                                  if tiny_train or not _class_share_row(row)], one_value_limit=limit)


def _class_share_row(row: dict) -> bool:
    """A row whose accuracy is one class's share, not a count of a small set: its F1 is a one-class model's,
    2a/(1+a) (binary) or 2a/((1+a)K) (macro over K classes) for a whole K. 0.1667 with F1 0.0476 is the largest of
    six balanced classes predicted for everything, whatever the size of the set."""
    a, f = row.get("accuracy"), row.get("f1")
    if a is None or f is None or a.kind != "number" or f.kind != "number" or not 0 < a.value < 1 or f.value <= 0:
        return False
    k = round(2 * a.value / ((1 + a.value) * f.value))
    return 1 <= k <= 20 and abs(2 * a.value / ((1 + a.value) * k) - f.value) <= 1e-3


def card_entity_total(card: ParsedCard) -> tuple[int, list[str]] | None:
    """The gold entities of a NER card's evaluation set: the sum of seqeval's per-type `Number` columns (the last
    row's, else the headline's). Returns (total, ['Dob 2', ...]) or None when the card prints no counts."""
    sources = ([card.table.rows[-1]] if card.table and card.table.rows else []) + [card.headline]
    for cells in sources:
        counts = {k[: -len("_number")]: c.value for k, c in cells.items()
                  if k.endswith("_number") and entity_of(k) and c is not None and c.kind == "number" and c.value >= 0}
        if counts:
            total = int(round(sum(counts.values())))
            return total, [f"{name.replace('_', ' ').title()} {int(v)}" for name, v in counts.items()]
    return None


def card_tiny_entities(card: ParsedCard, task: str | None) -> tuple[int, list[str]] | None:
    """:func:`card_entity_total` when it is under TINY_EVAL gold entities (NER cards and cards naming no task)."""
    if task not in (NER, None):
        return None
    found = card_entity_total(card)
    return found if found and found[0] < TINY_EVAL else None


def check_card_eval_size(card: ParsedCard, task: str | None,
                          bound: tuple[Eval, int, float] | None = None) -> list[Finding]:
    """D608 on a card: the accuracy values of the headline and the Training results give the evaluation set away;
    on a NER card, seqeval's per-type `Number` columns count its gold entities. ``bound``:
    :func:`card_train_bound`'s answer for this card."""
    entities = card_tiny_entities(card, task)
    if entities:
        total, parts = entities
        return [finding(
            "D608", "A very small evaluation set",
            f"{total} gold entities in the evaluation set ({', '.join(parts[:8])}"
            f"{', …' if len(parts) > 8 else ''}), under {TINY_EVAL}: one entity found or missed moves recall by "
            f"{1 / max(total, 1):.0%}, and scores repeat between evaluations for lack of finer values.",
            "Scores this small are noisy: evaluate on a few hundred entities or more, or report a confidence interval.",
            splits=[f"{total} gold entities"], entities=total)]
    if task not in (CLS, None) or not card.table:
        return []
    found = card_eval_size(card, bound)
    if not found:
        return []
    n, fractions = found
    cells = [row.get("accuracy") for row in card.table.rows]
    shown = list(dict.fromkeys(c.raw.strip() for c in cells if c is not None and c.kind == "number"))
    what = (f"accuracy values {', '.join(shown[:6])} are {', '.join(fractions[:6])}" if len(fractions) > 1 else
            f"accuracy {shown[0]} at {'every evaluation' if len(cells) > 1 else 'the evaluation'} is {fractions[0]}"
            + ("" if n <= TINY_EVAL_ONE_VALUE else ", and the training set is tiny too (D601)"))
    return [tiny_eval([f"{what}: about {n} evaluation examples (or a multiple of {n})"], examples=n)]


def check_perfect(evals: list[Eval], headline: dict[str, float], task: str | None) -> list[Finding]:
    """D609: a score of 1.0 at every evaluation (and in the headline). Not a collapse: train/eval overlap, a
    trivial task, or a broken metric (D510 says when the loss proves it)."""
    if task not in (NER, CLS, None):
        return []
    perfect = []
    printed = [b for b in ("f1", "accuracy", "precision", "recall")
               if b in headline or any(_finite(e.metrics.get(b)) for e in evals)]
    for base in printed:
        values = [e.metrics.get(base) for e in evals if _finite(e.metrics.get(base))]
        if values and (len(values) >= 2 or base in headline) and all(v >= 0.99995 for v in values) and \
                headline.get(base, 1.0) >= 0.99995:
            perfect.append(base)
    # recall 1.0 alone (with precision below) is a one-class model, not a perfect one: every printed score must be 1
    if not perfect or len(perfect) < len(printed):
        return []
    names = ", ".join(p.title() if p != "f1" else "F1" for p in perfect)
    losses = [e.validation_loss for e in evals if _finite(e.validation_loss)]
    return [finding(
        "D609", "Perfect scores at every evaluation",
        f"{names} 1.0 at all {len(evals)} evaluations" + (f", from {evals[0].where}" if evals else "")
        + (f"; validation loss {fmt(min(losses))} to {fmt(max(losses))}" if losses else "") + ".",
        "A perfect score from the first evaluation on rarely means a perfect model: check that no evaluation example "
        "is in the training data (duplicates, near-duplicates, a split made after augmentation), that the task is not "
        "trivial (a label leaked into the text, one class only in the evaluation set), and that the metric is "
        "computed on the predictions against the gold labels.", metrics=perfect)]


def leakage_finding(duplicates, eval_examples, split: str = "validation") -> Finding | None:
    """D607 from counts (as stored in metrics.json data.leakage)."""
    n, m = _num(duplicates), _num(eval_examples)
    if not n or not m or n <= 0:
        return None
    share = n / m
    severity = ERROR if share >= LEAKAGE_ERROR else WARNING if share >= LEAKAGE_WARNING else INFO
    return finding(
        "D607", "Evaluation examples that are also in the training data",
        f"{split}: {fmt_int(n)} of {fmt_int(m)} examples ({share:.1%}) appear verbatim in the training split.",
        "The score overstates performance on new text: remove the duplicates from the evaluation split (or from "
        "training) and evaluate again.", severity=severity, duplicates=n, eval_examples=m, split=split)


def leakage(train_texts: Iterable, eval_texts: Iterable, split: str = "validation") -> Finding | None:
    """D607 for duplicate texts between training and evaluation, or None when there are none."""
    counts = leakage_counts(train_texts, eval_texts)
    return leakage_finding(counts["duplicates"], counts["eval_examples"], split)


def check_card_data(card: ParsedCard, bound: tuple[Eval, int, float] | None) -> list[Finding]:
    """D601 from steps per epoch x batch size (``bound``: :func:`card_train_bound`'s answer for this card); tunecard
    cards also from their data table (via baselines' splits)."""
    found = []
    if card.data_examples:
        n = card.data_examples.get("train")
        if n is not None and n < TINY_TRAIN:
            found.append(tiny_train(f"{fmt_int(n)} training examples (data table)", n))
        small = [f"{split}: {fmt_int(n)} examples" for split, n in card.data_examples.items()
                 if split != "train" and n < TINY_EVAL]
        if small:
            found.append(tiny_eval(small))
        return found
    if bound:
        e, per_epoch, examples = bound
        if examples < TINY_TRAIN:
            found.append(tiny_train(
                f"{e.where}: about {per_epoch} step{'s' if per_epoch != 1 else ''} per epoch × batch "
                f"{fmt_int(card_batch(card))} = at most {fmt_int(examples)} training examples", examples))
    return found


def card_batch(card: ParsedCard) -> float | None:
    """The effective training batch of a card: total_train_batch_size, else batch × gradient accumulation."""
    total = card.hyper_float("total_train_batch_size")
    batch = card.hyper_float("train_batch_size")
    accumulation = card.hyper_float("gradient_accumulation_steps") or 1
    return total or (batch * accumulation if batch else None)


def card_train_bound(card: ParsedCard, evals: list[Eval]) -> tuple[Eval, int, float] | None:
    """(the row read, steps per epoch, at most so many training examples): the last row's step / epoch × the
    effective batch; None when the card does not print them (or has a data table: tunecard's own cards). The card
    report computes it once per card and hands it to the checks that read it."""
    if card.data_examples:
        return None
    effective = card_batch(card)
    candidates = [e for e in evals if e.epoch and e.step and e.epoch > 0]
    if not effective or not candidates:
        return None
    e = candidates[-1]
    per_epoch = math.ceil(e.step / e.epoch - 1e-6)
    return e, per_epoch, per_epoch * effective
