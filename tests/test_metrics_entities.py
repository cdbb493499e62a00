"""Entity-level NER metrics: parity with seqeval (default = conlleval, and strict per scheme), hand-checked
conlleval examples, confusion data, errors, and the NER baselines."""

from __future__ import annotations

import itertools
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunecard.errors import ConfigError, DataError
from tunecard.metrics import EntityScorer, all_o_baseline, extract_entities, majority_tag_baseline, score_entities

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402

SEQEVAL_SCHEMES = {"IOB2": seqeval_scheme.IOB2, "IOBES": seqeval_scheme.IOBES, "BILOU": seqeval_scheme.BILOU}
SCHEME_PREFIXES = {"IOB2": "BI", "IOBES": "BIES", "BILOU": "BILU"}
TYPES = ["PER", "LOC", "creative-work"]  # one type contains the '-' delimiter

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPAN_SETTINGS = settings(max_examples=150, deadline=None)  # longer sequences than the exhaustive test
APPROX = {"rel": 1e-12, "abs": 1e-12}


@st.composite
def tag_alphabets(draw, prefixes: str = "BIES"):
    """(types, alphabet): 'O' plus prefixed tags of 1-3 types (small alphabets make malformed patterns
    frequent), sometimes with lone prefixes ("B", which seqeval types as "_")."""
    types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))
    lone = list(prefixes) if draw(st.booleans()) else []
    return types, ["O"] + [f"{p}-{t}" for p in prefixes for t in types] + lone


def well_formed_chunk(prefixes: str, type_: str, length: int) -> list[str]:
    """One entity written in the scheme the prefixes imply (BIO, BIOES or BILOU)."""
    single, last = {"BI": ("B", "I"), "BIES": ("S", "E"), "BILU": ("U", "L")}[prefixes]
    if length == 1:
        return [f"{single}-{type_}"]
    return [f"B-{type_}"] + [f"I-{type_}"] * (length - 2) + [f"{last}-{type_}"]


@st.composite
def tag_sequences(draw, prefixes: str = "BIES"):
    """Uniformly random tags, or well-formed entities with some tags corrupted (type swapped or replaced
    by any tag): the second kind reaches the near-miss patterns that uniform draws rarely produce."""
    types, alphabet = draw(tag_alphabets(prefixes))
    if draw(st.booleans()):
        return draw(st.lists(st.sampled_from(alphabet), max_size=16))
    tags: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            tags.append("O")
        else:
            tags += well_formed_chunk(prefixes, draw(st.sampled_from(types)), draw(st.integers(1, 4)))
    corrupted = []
    for tag in tags:
        how = draw(st.sampled_from(["keep", "keep", "keep", "swap-type", "any"]))
        if how == "swap-type" and tag != "O":
            tag = f"{tag[0]}-{draw(st.sampled_from(types))}"
        elif how == "any":
            tag = draw(st.sampled_from(alphabet))
        corrupted.append(tag)
    return corrupted


@st.composite
def corpora(draw, prefixes: str = "BIES"):
    """(gold, pred): several sentences of random, often malformed, tags; predictions keep each gold tag
    or replace it, so that some entities match and some do not."""
    _, alphabet = draw(tag_alphabets(prefixes))
    tag = st.sampled_from(alphabet)
    gold = draw(st.lists(st.one_of(tag_sequences(prefixes), st.lists(tag, max_size=8)), min_size=1, max_size=6))
    pred = [[draw(st.one_of(st.just(g), tag)) for g in sentence] for sentence in gold]
    return gold, pred


def seqeval_reference(gold, pred, scheme: str | None = None) -> dict:
    """seqeval's numbers: micro P/R/F1, per-type report, macro/weighted averages, token accuracy."""
    kwargs = {"mode": "strict", "scheme": SEQEVAL_SCHEMES[scheme]} if scheme else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning: seqeval sets those ratios to 0
        reference = {
            "precision": seqeval_metrics.precision_score(gold, pred, **kwargs),
            "recall": seqeval_metrics.recall_score(gold, pred, **kwargs),
            "f1": seqeval_metrics.f1_score(gold, pred, **kwargs),
        }
        has_entities = bool(ours_types(gold, pred, scheme))
        # seqeval's report fails/returns nan averages when there are no entities at all.
        reference["report"] = (
            seqeval_metrics.classification_report(gold, pred, output_dict=True, **kwargs) if has_entities else {}
        )
        if sum(map(len, gold)):
            reference["accuracy"] = seqeval_metrics.accuracy_score(gold, pred)
    return reference


def ours_types(gold, pred, scheme):
    mode = "strict" if scheme else "default"
    return {t for seq in [*gold, *pred] for t, _, _ in extract_entities(seq, mode=mode, scheme=scheme)}


def assert_parity(gold, pred, scheme: str | None = None) -> None:
    ours = score_entities(gold, pred, mode="strict" if scheme else "default", scheme=scheme)
    reference = seqeval_reference(gold, pred, scheme)
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(reference[key], **APPROX), key
    if "accuracy" in reference:
        assert ours["accuracy"] == pytest.approx(reference["accuracy"], **APPROX)

    report = reference["report"]
    type_rows = {name: row for name, row in report.items() if not name.endswith(" avg")}
    assert sorted(ours["per_label"]) == sorted(type_rows)
    for name, row in type_rows.items():
        mine = ours["per_label"][name]
        assert mine["precision"] == pytest.approx(row["precision"], **APPROX)
        assert mine["recall"] == pytest.approx(row["recall"], **APPROX)
        assert mine["f1"] == pytest.approx(row["f1-score"], **APPROX)
        assert mine["support"] == row["support"]
    if report:
        for average in ("macro", "weighted"):
            row = report[f"{average} avg"]
            assert ours[f"{average}_precision"] == pytest.approx(row["precision"], **APPROX)
            assert ours[f"{average}_recall"] == pytest.approx(row["recall"], **APPROX)
            assert ours[f"{average}_f1"] == pytest.approx(row["f1-score"], **APPROX)
        assert ours["gold_entities"] == report["micro avg"]["support"]
    else:
        assert ours["f1"] == ours["macro_f1"] == ours["weighted_f1"] == 0.0


# ------------------------------------------------------------------ parity with seqeval: spans


@pytest.mark.parametrize("scheme", [None, "IOB2", "IOBES", "BILOU"])
def test_spans_equal_seqeval_on_every_short_sequence(scheme):
    """Exhaustive: every sequence of up to 4 tags over 'O', each prefix with two types (one containing
    '-') and the lone prefix (up to 30,941 sequences per scheme). This covers every pair and triple of
    neighbouring tags the span rules look at; the property tests below add longer sequences."""
    prefixes = SCHEME_PREFIXES[scheme] if scheme else "BIES"
    alphabet = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "creative-work")] + list(prefixes)
    for length in range(5):
        for tags in itertools.product(alphabet, repeat=length):
            tags = list(tags)
            if scheme is None:
                expected = [(t, start, end + 1) for t, start, end in get_entities(tags)]  # inclusive ends
                assert extract_entities(tags) == expected, tags
            else:
                reference = seqeval_scheme.Tokens(tags, SEQEVAL_SCHEMES[scheme]).entities
                assert extract_entities(tags, "strict", scheme) == [(e.tag, e.start, e.end) for e in reference], tags


# ------------------------------------------------------------------ parity with seqeval (property tests)


@SPAN_SETTINGS
@given(tag_sequences())
def test_default_spans_equal_seqeval_get_entities(tags):
    expected = [(t, start, end + 1) for t, start, end in get_entities(tags)]  # seqeval ends are inclusive
    assert extract_entities(tags) == expected


@SPAN_SETTINGS
@given(st.sampled_from(sorted(SCHEME_PREFIXES)), st.data())
def test_strict_spans_equal_seqeval_tokens(scheme, data):
    tags = data.draw(tag_sequences(SCHEME_PREFIXES[scheme]))
    reference = seqeval_scheme.Tokens(tags, SEQEVAL_SCHEMES[scheme]).entities
    assert extract_entities(tags, mode="strict", scheme=scheme) == [(e.tag, e.start, e.end) for e in reference]


@PROPERTY_SETTINGS
@given(corpora())
def test_default_mode_scores_equal_seqeval(corpus):
    assert_parity(*corpus)


@PROPERTY_SETTINGS
@given(st.sampled_from(sorted(SCHEME_PREFIXES)), st.data())
def test_strict_mode_scores_equal_seqeval_strict(scheme, data):
    gold, pred = data.draw(corpora(prefixes=SCHEME_PREFIXES[scheme]))
    assert_parity(gold, pred, scheme=scheme)


@PROPERTY_SETTINGS
@given(corpora())
def test_confusion_rows_and_spurious_add_up(corpus):
    result = score_entities(*corpus)
    for gold_type, row in result["confusion"].items():
        assert sum(row.values()) == result["per_label"][gold_type]["support"]
        assert row.get(gold_type, 0) == result["per_label"][gold_type]["correct"]
    for pred_type, stats in result["per_label"].items():
        matched_boundaries = sum(row.get(pred_type, 0) for row in result["confusion"].values())
        assert matched_boundaries + result["spurious"].get(pred_type, 0) == stats["predicted"]


# ------------------------------------------------------------------ hand-checked conlleval examples


def test_conlleval_example_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC"], ["O", "B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-PER"], ["O", "B-MISC", "O"]]
    # gold: PER[0,2) ORG[3,5) LOC[6,7) | MISC[1,2)  -> 4 phrases
    # pred: PER[0,2) ORG[3,4) PER[6,7) | MISC[1,2)  -> 4 phrases found, 2 correct (PER[0,2), MISC)
    # conlleval: processed 10 tokens with 4 phrases; found: 4 phrases; correct: 2.
    #            accuracy 8/10 = 80.00%; precision 2/4 = 50.00%; recall 2/4 = 50.00%; FB1 50.00
    # per type: LOC 0/0/0, MISC 100/100/100, ORG 0/0/0, PER P 1/2 R 1/1 F 2*.5*1/1.5 = 66.67
    result = score_entities(gold, pred)
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == (0.5, 0.5, 0.5, 0.8)
    assert result["per_label"]["PER"] == {
        "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1, "predicted": 2, "correct": 1
    }
    assert result["per_label"]["LOC"]["f1"] == result["per_label"]["ORG"]["f1"] == 0.0
    assert result["macro_f1"] == pytest.approx((0 + 1 + 0 + 2 / 3) / 4)  # 0.4167, all supports 1
    assert result["weighted_f1"] == pytest.approx(result["macro_f1"])
    # LOC[6,7) was predicted with the right boundaries but as PER; ORG[3,5) has no prediction with its
    # boundaries; the predicted ORG[3,4) matches no gold boundaries.
    assert result["confusion"] == {"LOC": {"PER": 1}, "MISC": {"MISC": 1}, "ORG": {"(missed)": 1}, "PER": {"PER": 1}}
    assert result["spurious"] == {"ORG": 1}
    counts = {k: result[k] for k in ("gold_entities", "predicted_entities", "correct_entities", "sentences", "tokens")}
    assert counts == {"gold_entities": 4, "predicted_entities": 4, "correct_entities": 2, "sentences": 2, "tokens": 10}
    assert_parity(gold, pred)


def test_seqeval_docstring_example():
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    # MISC[3,6) vs predicted MISC[2,6): wrong boundaries; PER right -> P = R = F1 = 1/2; 8 of 10 tags right.
    result = score_entities(gold, pred)
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == (0.5, 0.5, 0.5, 0.8)
    assert result["macro_f1"] == 0.5


def test_i_after_o_opens_an_entity_in_default_mode_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "I-LOC"]]
    # conlleval: I-X after O starts a chunk -> PER[0,2), LOC[3,4) both correct: P = R = F1 = 1; tokens 2/4.
    lenient = score_entities(gold, pred)
    assert (lenient["precision"], lenient["recall"], lenient["f1"], lenient["accuracy"]) == (1.0, 1.0, 1.0, 0.5)
    # strict IOB2: a chunk must start with B -> nothing predicted: P = 0 (0/0), R = 0/2 = 0.
    strict = score_entities(gold, pred, mode="strict", scheme="IOB2")
    assert (strict["precision"], strict["recall"], strict["f1"]) == (0.0, 0.0, 0.0)
    assert strict["predicted_entities"] == 0 and strict["gold_entities"] == 2
    assert_parity(gold, pred)
    assert_parity(gold, pred, scheme="IOB2")


def test_i_of_another_type_after_b_splits_the_entity():
    # B-PER I-LOC -> PER[0,1) and LOC[1,2); gold PER[0,2): nothing correct, P = 0/2, R = 0/1.
    assert extract_entities(["B-PER", "I-LOC", "O"]) == [("PER", 0, 1), ("LOC", 1, 2)]
    result = score_entities([["B-PER", "I-PER", "O"]], [["B-PER", "I-LOC", "O"]])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    assert result["confusion"] == {"PER": {"(missed)": 1}}
    assert result["spurious"] == {"LOC": 1, "PER": 1}


def test_e_and_s_prefixes():
    tags = ["S-PER", "B-LOC", "E-LOC", "E-LOC", "I-ORG"]
    # default: E after E starts a new chunk, I-ORG after E-LOC starts ORG (closed by the trailing O)
    assert extract_entities(tags) == [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4), ("ORG", 4, 5)]
    # strict IOBES: the lone E-LOC and the unterminated I-ORG are no entities
    assert extract_entities(tags, mode="strict", scheme="IOBES") == [("PER", 0, 1), ("LOC", 1, 3)]
    assert extract_entities(["U-PER", "B-LOC", "I-LOC", "L-LOC", "B-ORG"], "strict", "BILOU") == [
        ("PER", 0, 1), ("LOC", 1, 4)
    ]


def test_types_containing_the_delimiter_and_lone_prefixes():
    assert extract_entities(["B-creative-work", "I-creative-work", "O", "B-corporation"]) == [
        ("creative-work", 0, 2), ("corporation", 3, 4)
    ]
    # lone prefixes have no type; seqeval names it "_"
    assert extract_entities(["B", "I", "O", "I"]) == [("_", 0, 2), ("_", 3, 4)]
    assert extract_entities(["O", "O"]) == [] and extract_entities([]) == []


def test_chunks_never_cross_sentences():
    # seqeval flattens with an "O" between sentences; per-sentence scoring must give the same spans.
    gold = [["O", "B-PER"], ["I-PER", "O"]]
    pred = [["O", "B-PER"], ["B-PER", "O"]]
    assert score_entities(gold, pred)["f1"] == 1.0
    assert_parity(gold, pred)


def test_streaming_scorer_equals_batch_function():
    gold = [["B-PER", "O"], ["B-LOC", "I-LOC"], []]
    pred = [["B-PER", "O"], ["B-LOC", "O"], []]
    scorer = EntityScorer()
    for g, p in zip(gold, pred):
        scorer.update(g, p)
    assert scorer.result() == score_entities(iter(gold), iter(pred))


def test_empty_input_gives_zeros():
    result = score_entities([], [])
    assert result["f1"] == result["accuracy"] == result["macro_f1"] == 0.0
    assert result["per_label"] == {} and result["tokens"] == 0


# ------------------------------------------------------------------ errors


def test_length_mismatch_names_the_sentence():
    scorer = EntityScorer()
    scorer.update(["O"], ["O"])
    with pytest.raises(ConfigError, match="sentence 1") as error:
        scorer.update(["B-PER", "O"], ["B-PER"])
    assert error.value.code == "E261"
    with pytest.raises(ConfigError, match="sentence 1"):
        score_entities([["O"], ["O"]], [["O"]])


def test_invalid_tags_raise_data_error():
    with pytest.raises(DataError, match="L-PER") as error:
        extract_entities(["B-PER", "L-PER"])  # BILOU tags need strict mode
    assert error.value.code == "E160"
    with pytest.raises(DataError, match="IOB2"):
        extract_entities(["B-PER", "E-PER"], mode="strict", scheme="IOB2")
    with pytest.raises(ValueError):  # seqeval refuses the same sequence in strict mode
        seqeval_scheme.Tokens(["B-PER", "E-PER"], seqeval_scheme.IOB2).entities
    with pytest.raises(DataError, match="sentence 0 \\(predicted\\)"):
        score_entities([["O"]], [[""]])


def test_bad_mode_or_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a tag scheme"):
        EntityScorer(mode="strict")
    with pytest.raises(ConfigError, match="unknown entity scoring mode"):
        EntityScorer(mode="lenient")
    with pytest.raises(ConfigError, match="unknown tag scheme"):
        EntityScorer(mode="strict", scheme="IOE9")
    assert EntityScorer(mode="strict", scheme="bio").scheme == "IOB2"


# ------------------------------------------------------------------ baselines


def test_all_o_baseline():
    gold = [["B-PER", "I-PER", "O"], ["O", "O"]]
    result = all_o_baseline(gold)
    # no entity predicted: P = R = F1 = 0; 3 of 5 gold tags are O -> token accuracy 0.6
    assert result["strategy"] == "all-O"
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["gold_entities"] == 1 and result["predicted_entities"] == 0


def test_majority_tag_baseline():
    train_words = [["John", "lives", "in", "Paris"], ["Paris", "Hilton"]]
    train_tags = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "I-PER"]]
    # Paris: B-LOC once, B-PER once -> tie, alphabetically first: B-LOC. Hilton -> I-PER.
    eval_words = [["Hilton", "visited", "Paris"]]
    eval_tags = [["B-PER", "O", "B-LOC"]]
    # predicted: I-PER O B-LOC -> default mode reads PER[0,1) and LOC[2,3): both correct
    lenient = majority_tag_baseline(train_words, train_tags, eval_words, eval_tags)
    assert lenient["strategy"] == "majority-tag" and lenient["unseen_words"] == 1
    assert lenient["f1"] == 1.0 and lenient["accuracy"] == pytest.approx(2 / 3)
    # strict IOB2: I-PER after O is no entity -> 1 of 2 found, 1 correct: P 1, R 1/2, F1 2/3
    strict = majority_tag_baseline(train_words, train_tags, eval_words, eval_tags, mode="strict", scheme="IOB2")
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)
    assert strict["f1"] == pytest.approx(2 / 3)


def test_majority_tag_baseline_rejects_misaligned_data():
    with pytest.raises(DataError, match="training sentence 0: 2 words but 1 tags"):
        majority_tag_baseline([["a", "b"]], [["O"]], [], [])
    with pytest.raises(DataError, match="evaluation sentence 1"):
        majority_tag_baseline([["a"]], [["O"]], [["a"], ["b"]], [["O"]])
