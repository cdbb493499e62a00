"""Classification metrics: scikit-learn parity of the list function and of the streaming confusion-matrix
scorer, positive-label rules, errors, and the majority baseline."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tunecard.errors import ConfigError, DataError
from tunecard.metrics import ClassificationScorer, classification_scores, default_positive_label, majority_baseline

LABEL_SETS = [["0", "1"], ["neg", "pos"], ["ham", "spam"], ["a", "b", "c"], ["sports", "tech", "world", "arts"]]
APPROX = {"rel": 1e-12, "abs": 1e-12}
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)  # scikit-learn calls cost ~5 ms each


@st.composite
def labelled(draw):
    """(labels, gold, pred): predictions agree with gold about half the time; some labels may be absent."""
    labels = draw(st.sampled_from(LABEL_SETS))
    label = st.sampled_from(labels)
    gold = draw(st.lists(label, min_size=1, max_size=40))
    pred = [draw(st.one_of(st.just(g), label)) for g in gold]
    return labels, gold, pred


@PROPERTY_SETTINGS
@given(labelled())
def test_classification_scores_equal_sklearn(case):
    labels, gold, pred = case
    ours = classification_scores(gold, pred, labels=labels)
    assert ours["accuracy"] == pytest.approx(accuracy_score(gold, pred), **APPROX)
    expected_matrix = confusion_matrix(gold, pred, labels=labels).tolist()
    assert ours["confusion_matrix"] == {"labels": labels, "matrix": expected_matrix}
    assert ours["n"] == len(gold)

    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, average=None, zero_division=0)
    for i, label in enumerate(labels):
        row = ours["per_label"][label]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[i], r[i], f[i]), **APPROX)
        assert row["support"] == s[i] and row["predicted"] == pred.count(label)
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=labels, average=average, zero_division=0)
        mine = (ours[f"{average}_precision"], ours[f"{average}_recall"], ours[f"{average}_f1"])
        assert mine == pytest.approx((p, r, f), **APPROX), average

    if len(labels) == 2:
        positive = ours["positive_label"]
        assert ours["average"] == "binary" and positive == default_positive_label(labels)
        p, r, f, _ = precision_recall_fscore_support(
            gold, pred, labels=labels, average="binary", pos_label=positive, zero_division=0
        )
    else:
        assert ours["average"] == "macro" and ours["positive_label"] is None
        p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=labels, average="macro", zero_division=0)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), **APPROX)


@PROPERTY_SETTINGS
@given(labelled(), st.data())
def test_streaming_scorer_equals_sklearn_based_scores(case, data):
    labels, gold, pred = case
    given_labels = data.draw(st.booleans())
    # cut the examples into random batches
    cuts = sorted(data.draw(st.lists(st.integers(0, len(gold)), max_size=4)))
    bounds = [0, *cuts, len(gold)]
    scorer = ClassificationScorer(labels=labels if given_labels else None)
    for start, end in zip(bounds, bounds[1:]):
        scorer.update(gold[start:end], pred[start:end])
    streamed = scorer.result()
    reference = classification_scores(gold, pred, labels=labels if given_labels else None)
    assert streamed.keys() == reference.keys()
    for key, value in reference.items():
        if isinstance(value, float):
            assert streamed[key] == pytest.approx(value, **APPROX), key
        elif key == "per_label":
            for label, row in value.items():
                assert streamed[key][label] == pytest.approx(row, **APPROX), label
        else:
            assert streamed[key] == value, key


def test_binary_scores_by_hand():
    gold = ["pos", "pos", "neg", "neg", "pos"]
    pred = ["pos", "neg", "neg", "pos", "pos"]
    # positive "pos": TP = 2 (items 0, 4), FN = 1 (item 1), FP = 1 (item 3) -> P = R = F1 = 2/3; 3 of 5 right
    result = classification_scores(gold, pred)
    assert result["positive_label"] == "pos" and result["average"] == "binary"
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[1, 1], [1, 2]]}
    # the other label as positive: TP = 1, FN = 1, FP = 1 -> 1/2
    assert classification_scores(gold, pred, positive_label="neg")["f1"] == pytest.approx(0.5)


def test_multiclass_headline_is_macro():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    # a: P 1/1, R 1/2, F1 2/3; b: P 1/3, R 1/1, F1 1/2; c: P 0 (none predicted), R 0, F1 0
    result = classification_scores(gold, pred)
    assert result["average"] == "macro" and result["positive_label"] is None
    assert result["precision"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert result["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert result["f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert result["micro_f1"] == result["accuracy"] == 0.5
    assert result["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["1", "0"], "1"),
        (["neg", "pos"], "pos"),
        (["NEGATIVE", "POSITIVE"], "POSITIVE"),
        (["no", "yes"], "yes"),
        (["False", "True"], "True"),
        (["spam", "ham"], "spam"),  # no positive-sounding name: second in sorted order
    ],
)
def test_default_positive_label(labels, expected):
    assert default_positive_label(labels) == expected


def test_label_order_follows_given_labels():
    result = classification_scores(["b", "a"], ["b", "b"], labels=["b", "a"])
    assert result["confusion_matrix"] == {"labels": ["b", "a"], "matrix": [[1, 0], [1, 0]]}
    assert list(result["per_label"]) == ["b", "a"]


def test_empty_input_gives_zeros():
    result = classification_scores([], [], labels=["a", "b"])
    assert result["n"] == 0 and result["accuracy"] == result["f1"] == 0.0
    assert result["confusion_matrix"]["matrix"] == [[0, 0], [0, 0]]


def test_errors():
    with pytest.raises(ConfigError, match=r"predicted labels \['c'\]") as error:
        classification_scores(["a"], ["c"], labels=["a", "b"])
    assert error.value.code == "E262"
    with pytest.raises(ConfigError, match="gold labels"):
        classification_scores(["z"], ["a"], labels=["a", "b"])
    with pytest.raises(ConfigError, match="not one of the labels") as error:
        classification_scores(["a"], ["b"], positive_label="c", labels=["a", "b"])
    assert error.value.code == "E263"
    with pytest.raises(ConfigError, match="binary tasks only"):
        classification_scores(["a", "b", "c"], ["a", "b", "c"], positive_label="a")
    with pytest.raises(ConfigError, match="2 gold labels but 1"):
        classification_scores(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="given twice"):
        ClassificationScorer(labels=["a", "a"])
    scorer = ClassificationScorer(labels=["a", "b"])
    scorer.update(["a"], ["b"])
    with pytest.raises(ConfigError, match="batch 1"):
        scorer.update(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="batch 1: predicted"):
        scorer.update(["a"], ["x"])


# ------------------------------------------------------------------ majority baseline


def test_majority_baseline():
    train = ["neg", "neg", "pos"]
    evaluation = ["neg", "pos", "pos", "pos"]
    result = majority_baseline(train, evaluation)
    # always "neg": accuracy 1/4; positive "pos" is never predicted -> P = 0 (0/0), R = 0/3, F1 = 0
    assert result["strategy"] == "majority" and result["label"] == "neg"
    assert result["accuracy"] == 0.25
    assert result["positive_label"] == "pos" and result["f1"] == 0.0
    assert result["per_label"]["neg"]["recall"] == 1.0


def test_majority_baseline_ties_and_labels_missing_from_eval():
    # tie between b and a: alphabetically first; label set is train + eval, so the task stays binary
    result = majority_baseline(["b", "a"], ["a", "a"])
    assert result["label"] == "a" and result["accuracy"] == 1.0 and result["labels"] == ["a", "b"]
    with pytest.raises(DataError, match="no labels"):
        majority_baseline([], ["a"])
