"""The checks: from a run's history / metrics / config, or from what a card prints.

Every check is a small function returning findings; :func:`diagnose_run` (pure, used when the card is
written) and :func:`card_findings` run them. Thresholds are the constants in :mod:`.common`, so a reader can
see exactly when a finding fires (docs/doctor.md lists them per code).

One module per check family: ``common`` (task names, thresholds, helpers, :class:`Eval`), ``collapse`` (D1xx),
``baseline`` (D2xx), ``divergence`` (D3xx), ``training`` (D4xx overfitting / convergence), ``card`` (D5xx card
consistency), ``data`` (D6xx, leakage), ``environment`` (D7xx); ``run`` and ``card_report`` run them in order.
Every name the single ``checks`` module had is importable from here.
"""

from __future__ import annotations

from ..findings import FAMILIES
from .baseline import check_baselines
from .card import (
    _column,
    _half_unit,
    _metric_keys,
    _row_text,
    _scales,
    _tolerance,
    card_evals,
    check_copied,
    check_harmonic,
    check_headline,
    check_identical_rows,
    check_model_index,
    check_nolog,
    match_headline,
)
from .card_report import card_findings, card_report
from .collapse import (
    REMEDY_COLLAPSE,
    REMEDY_NO_ENTITIES,
    _counts,
    _loss_moved,
    _moved,
    check_card_collapse,
    check_frozen,
    check_run_collapse,
    one_class_signature,
)
from .common import (
    BASELINE_MARGIN,
    BEST_GAP,
    CHECKED_CARD,
    CHECKED_RUN,
    CLS,
    COLLAPSE_MAX_CLASSES,
    COLLAPSE_TOLERANCE,
    F1_TOLERANCE,
    FROZEN_MIN_EVALS,
    IMBALANCE_RATIO,
    LEAKAGE_ERROR,
    LEAKAGE_MIN_WORDS,
    LEAKAGE_WARNING,
    LOSS_MOVED,
    LOSS_RISE_TOLERANCE,
    LR_HIGH,
    NER,
    NOT_CONVERGED_DELTA,
    NOT_CONVERGED_LOSS_DROP,
    OVERFIT_METRIC_GAIN,
    OVERFIT_MIN_ABSOLUTE,
    OVERFIT_RISE,
    RARE_LABEL_MIN,
    REPAIRED_WARNING,
    SMALL_BATCH,
    SMALL_BATCH_MAX_LR,
    STEP_TAIL_SHARE,
    TINY_EVAL,
    TINY_TRAIN,
    TITLES,
    TRAIN_RISE_MIN_EVALS,
    TRAIN_RISE_MIN_RELATIVE,
    TRUNCATED_WARNING,
    Eval,
    _finite,
    _num,
    _score,
    _series,
    _where,
    fmt,
    fmt_epoch,
    fmt_int,
    guarded,
    title,
)
from .data import (
    _label_counts,
    _normal_text,
    check_card_data,
    check_run_data,
    leakage,
    leakage_counts,
    leakage_finding,
    tiny_eval,
    tiny_train,
)
from .divergence import check_learning_rate, check_loss_trend, check_not_finite
from .environment import PACKAGES, _version_tuple, check_versions, installed_versions
from .run import _config_get, diagnose_run, run_evals, run_not_run, run_report_parts
from .training import check_best_not_last_card, check_best_not_last_run, check_not_converged, check_overfitting

__all__ = [
    "diagnose_run", "card_findings", "card_report", "run_not_run", "leakage", "leakage_counts", "leakage_finding", "installed_versions",
    "check_versions", "CHECKED_RUN", "CHECKED_CARD", "FAMILIES",
]
