"""The doctor on Markdown cards: hand-made cards in tests/cards reproduce each pattern seen in the wild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunecard.data import TASK_ALIASES
from tunecard.data.example import MULTI_LABEL_TASK
from tunecard.doctor import CODES, diagnose, diagnose_card, doctor_command, parse_card, render_markdown
from tunecard.doctor.cardparse import parse_value
from tunecard.doctor.findings import ERROR, INFO, WARNING

CARDS = Path(__file__).parent / "cards"
# The versions the hand-made Trainer cards list, so that the environment check is quiet unless a test wants it.
TRAINER_VERSIONS = {"Transformers": "4.44.2", "Pytorch": "2.4.0", "Datasets": "2.21.0", "Tokenizers": "0.19.1"}
TUNECARD_VERSIONS = {"Transformers": "5.23.0", "Pytorch": "2.13.0", "Datasets": "5.2.0", "Tokenizers": "0.23.3"}


def card(name: str, installed=None):
    return diagnose(CARDS / name, installed=installed or TRAINER_VERSIONS)


def codes(report, *severities) -> set[str]:
    return {f.code for f in report.findings if not severities or f.severity in severities}


def only(report, code):
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, [f.to_dict() for f in report.findings]
    return found[0]


# --- healthy cards --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, installed, rows", [
    ("healthy_ner_trainer.md", TRAINER_VERSIONS, 3),
    ("healthy_cls_trainer.md", TRAINER_VERSIONS, 4),
    ("healthy_tunecard.md", TUNECARD_VERSIONS, 4),
])
def test_healthy_cards_have_no_error_or_warning(name, installed, rows):
    report = card(name, installed)
    assert report.source == "card"
    assert not codes(report, ERROR, WARNING), [f.to_dict() for f in report.findings]
    assert report.unparsed == []
    assert report.read["results_rows"] == rows


def test_tunecard_card_saved_row_is_explained_not_warned():
    report = card("healthy_tunecard.md", TUNECARD_VERSIONS)
    finding = only(report, "D501")
    assert finding.severity == INFO and "epoch 3.0" in finding.title
    parsed = parse_card((CARDS / "healthy_tunecard.md").read_text(encoding="utf-8"))
    assert parsed.is_tunecard and parsed.table.marked == 2
    assert parsed.task == "token-classification"
    assert [b["predictor"] for b in parsed.baselines][:3] == ["this model", "this model", "all-O baseline"]
    assert parsed.per_label["person"]["predicted"].value == 436
    assert parsed.data_examples == {"train": 3394, "validation": 1009, "test": 1287}
    assert parsed.versions["tunecard"] == "0.1.0"


def test_healthy_card_has_its_parts_read():
    parsed = parse_card((CARDS / "healthy_ner_trainer.md").read_text(encoding="utf-8"))
    assert parsed.headline["f1"].value == 0.9424 and parsed.headline["loss"].value == 0.0611
    assert parsed.hyperparameters["learning_rate"] == "2e-05"
    assert parsed.hyper_float("learning_rate") == 2e-05
    assert parsed.table.keys[:4] == ["training_loss", "epoch", "step", "validation_loss"]
    assert parsed.model_index[0]["metrics"]["f1"].value == 0.9424
    assert parsed.versions == {"Transformers": "4.44.2", "Pytorch": "2.4.0+cu121", "Datasets": "2.21.0",
                               "Tokenizers": "0.19.1"}


# --- each pattern, found with the right code ----------------------------------------------------------------------


@pytest.mark.parametrize("name, code, severity", [
    ("collapse_frozen_f1.md", "D103", ERROR),
    ("collapse_binary_recall1.md", "D101", ERROR),
    ("ner_no_entities.md", "D102", ERROR),
    ("loss_rising.md", "D302", ERROR),
    ("loss_rising.md", "D304", WARNING),
    ("nan_loss.md", "D301", ERROR),
    ("batch_one.md", "D305", WARNING),
    ("plain_table_overfit.md", "D401", WARNING),
    ("plain_table_overfit.md", "D402", WARNING),
    ("per_entity_columns.md", "D403", WARNING),
    ("headline_other_epoch.md", "D501", INFO),  # the lowest-loss row: load_best_model_at_end
    ("headline_no_row.md", "D502", WARNING),
    ("no_log.md", "D503", INFO),
    ("copied_column.md", "D504", ERROR),
    ("f1_not_hm.md", "D505", WARNING),
    ("out_of_range.md", "D506", ERROR),
    ("identical_rows.md", "D508", WARNING),
    ("no_log.md", "D601", WARNING),
])
def test_pattern_found_with_its_code(name, code, severity):
    finding = only(card(name), code)
    assert finding.severity == severity
    assert finding.evidence and finding.remedy and finding.title
    assert finding.name == CODES[code].name


def test_frozen_f1_evidence_names_the_value_and_the_moving_loss():
    finding = only(card("collapse_frozen_f1.md"), "D103")
    assert "F1 0.9546 at all 5 evaluations" in finding.evidence
    assert "0.2977" in finding.evidence and finding.data["all_evaluations"] is True


def test_binary_recall_one_is_collapse_at_the_headline():
    finding = only(card("collapse_binary_recall1.md"), "D101")
    assert "every example is predicted positive" in finding.evidence
    # the headline has the same numbers as the collapsed rows: said once, the published results first
    assert finding.evidence.startswith("headline and epoch 2.0 (step 2134), epoch 3.0 (step 3201): recall 1.0000")
    assert finding.evidence.count("recall 1.0000") == 1
    # the rows quoted are exactly the collapsed ones: epoch 1 (recall 0.95) is not
    assert finding.data["rows"] == ["epoch 2.0 (step 2134)", "epoch 3.0 (step 3201)"]
    assert "epoch 1.0" not in finding.evidence


def test_headline_from_another_epoch_says_which():
    finding = only(card("headline_other_epoch.md"), "D501")
    assert "epoch 2.0" in finding.evidence and "epoch 4.0" in finding.evidence
    assert finding.data["row"] == "epoch 2.0 (step 1756)"


def test_copied_column_lists_rows_and_headline():
    finding = only(card("copied_column.md"), "D504")
    assert "Validation Loss = F1 in rows 1, 2, 3 (0.8822, 0.9046, 0.9146)" in finding.evidence
    assert "headline: Loss = F1" in finding.evidence


def test_no_log_training_loss():
    finding = only(card("no_log.md"), "D503")
    assert "3 of 3" in finding.evidence and "logging_strategy" in finding.remedy
    tiny = only(card("no_log.md"), "D601")
    assert tiny.data["examples"] == 400


def test_f1_not_harmonic_mean_in_headline_and_rows():
    finding = only(card("f1_not_hm.md"), "D505")
    assert "headline" in finding.evidence and "row 3" in finding.evidence and "0.9424" in finding.evidence


def test_plain_table_without_outer_pipes_is_read():
    parsed = parse_card((CARDS / "plain_table_overfit.md").read_text(encoding="utf-8"))
    assert len(parsed.table.rows) == 5
    assert parsed.table.rows[1]["validation_loss"].value == 0.2853
    finding = only(card("plain_table_overfit.md"), "D401")
    assert "epoch 2.0" in finding.title and finding.data["min"] == 0.2853


def test_per_entity_columns_and_dict_headline_are_read():
    parsed = parse_card((CARDS / "per_entity_columns.md").read_text(encoding="utf-8"))
    assert parsed.headline["loc_f1"].value == 0.9351 and parsed.headline["overall_f1"].value == 0.9046
    assert parsed.headline["per_number"].value == 1842
    assert {"loc_precision", "misc_f1", "overall_accuracy"} <= set(parsed.table.keys)
    assert parsed.task == "token-classification"
    report = card("per_entity_columns.md")
    assert "D505" not in codes(report) and "D501" not in codes(report) and "D502" not in codes(report)


def test_rising_training_loss_and_high_learning_rate():
    report = card("loss_rising.md")
    assert "1.0512 → 1.1893 → 1.3105 → 1.3872" in only(report, "D302").evidence
    assert only(report, "D304").data["learning_rate"] == 0.001


# --- smaller variations, inline ---------------------------------------------------------------------------------


def _healthy_text() -> str:
    return (CARDS / "healthy_ner_trainer.md").read_text(encoding="utf-8")


def test_percent_metrics_are_rescaled_with_an_info():
    text = _healthy_text()
    for value in ("0.9011", "0.9264", "0.9136", "0.9818", "0.9287", "0.9431", "0.9358", "0.9852", "0.9352", "0.9498",
                  "0.9424", "0.9861"):
        text = text.replace(f" {value} ", f" {float(value) * 100:.2f} ").replace(f": {value}\n",
                                                                                 f": {float(value) * 100:.2f}\n")
    report = diagnose_card(text, installed=TRAINER_VERSIONS)
    assert "D507" in codes(report, INFO)
    assert not codes(report, ERROR), [f.to_dict() for f in report.findings]


def test_model_index_disagreeing_with_headline():
    text = _healthy_text().replace("      value: 0.9424", "      value: 0.9524")
    assert "D509" in codes(diagnose_card(text, installed=TRAINER_VERSIONS), WARNING)


def test_versions_are_information_to_reproduce_never_a_warning():
    # The card's versions against this machine's are no defect of the card: info, worded as what to install.
    for installed in ({**TRAINER_VERSIONS, "Transformers": "5.1.0"}, {**TRAINER_VERSIONS, "Transformers": "4.46.0"},
                      {**TRAINER_VERSIONS, "Tokenizers": "0.20.0"}):
        finding = only(card("healthy_ner_trainer.md", installed), "D701")
        assert finding.severity == INFO and finding.title == "To reproduce, use these versions"
        assert "pip install" in finding.remedy
    major = only(card("healthy_ner_trainer.md", {**TRAINER_VERSIONS, "Transformers": "5.1.0"}), "D701")
    assert major.data["major"] and "'transformers==4.44.*'" in major.remedy
    assert not only(card("healthy_ner_trainer.md", {**TRAINER_VERSIONS, "Transformers": "4.46.0"}), "D701").data["major"]


def test_macro_average_f1_below_harmonic_mean_is_only_info():
    text = """---
pipeline_tag: text-classification
---
It achieves the following results on the evaluation set:
- Loss: 0.5
- Accuracy: 0.8012
- Precision: 0.7012
- Recall: 0.6123
- F1: 0.6234
"""
    assert only(diagnose_card(text, installed={}), "D505").severity == INFO


def test_multiclass_macro_collapse_formula():
    # 4 classes, the majority (40 %) predicted everywhere: macro recall 1/4, precision 0.4/4, F1 2·0.4/1.4/4.
    text = """It achieves the following results on the evaluation set:
- Loss: 1.31
- Accuracy: 0.4
- Precision: 0.1
- Recall: 0.25
- F1: 0.1429
"""
    assert "one class of 4" in only(diagnose_card(text, installed={}), "D101").evidence


# --- cards the doctor cannot fully read: it says what, and does not crash ------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("empty.md", "empty"),
    ("garbage.md", "YAML header"),
    ("no_table.md", "no table"),
    ("missing_cells.md", "missing Accuracy, F1"),
])
def test_unreadable_parts_are_reported(name, expected):
    report = card(name)
    assert any(expected in item for item in report.unparsed), report.unparsed
    assert not any(item.startswith("check ") for item in report.unparsed), report.unparsed
    json.dumps(report.to_dict(), allow_nan=False)


def test_missing_cells_rows_still_checked():
    parsed = parse_card((CARDS / "missing_cells.md").read_text(encoding="utf-8"))
    assert len(parsed.table.rows) == 4
    assert parsed.table.rows[1]["accuracy"].kind == "empty"


@pytest.mark.parametrize("name", ["healthy_tunecard.md", "per_entity_columns.md", "plain_table_overfit.md"])
def test_every_truncation_of_a_card_is_diagnosed_without_crashing(name):
    text = (CARDS / name).read_text(encoding="utf-8")
    for end in range(0, len(text), 97):
        report = diagnose_card(text[:end], installed={})
        assert not any(item.startswith("check ") for item in report.unparsed), (end, report.unparsed)


@pytest.mark.parametrize("text", [
    "\x00\x01binary", "| a | b |\n|---|---|\n| 1 |", "---\n- a list\n---\n", "---\nmodel-index: 3\n---\n",
    "It achieves the following results on the evaluation set:\n- Loss: {'x': [1, 2]}\n- F1: 1e400\n",
    "### Training results\n\n| Epoch | Step | Validation Loss |\n|---|---|---|\n| 1.0 | 10 | inf |\n| 2.0 | 20 | -1 |\n",
])
def test_odd_inputs(text):
    report = diagnose_card(text, installed={})
    assert not any(item.startswith("check ") for item in report.unparsed), report.unparsed
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("raw, kind, value", [
    ("0.9546", "number", 0.9546), ("No log", "nolog", None), ("1e-05", "number", 1e-05), ("92.5%", "number", 0.925),
    ("**0.95**", "number", 0.95), ("nan", "nan", None), ("", "empty", None), ("0.95 ± 0.01", "number", 0.95),
    ("abc", "text", None), ("{'f1': 0.9}", "dict", None),
])
def test_parse_value(raw, kind, value):
    cell = parse_value(raw)
    assert cell.kind == kind
    if value is not None:
        assert cell.value == pytest.approx(value)


# --- path handling, rendering, the command ------------------------------------------------------------------------


def test_diagnose_a_model_folder_with_a_readme(tmp_path):
    (tmp_path / "README.md").write_text((CARDS / "ner_no_entities.md").read_text(encoding="utf-8"), encoding="utf-8")
    report = diagnose(tmp_path, installed=TRAINER_VERSIONS)
    assert report.source == "card" and report.path.endswith("README.md")
    assert "D102" in codes(report)


def test_render_markdown_bullets_and_empty():
    report = card("collapse_binary_recall1.md")
    text = render_markdown(report.findings)
    assert text.startswith("- **error D101 collapse-one-class**")
    assert "*Remedy:*" in text and text.count("\n- ") == len(report.findings) - 1
    empty = render_markdown([])
    assert empty.startswith("No problems found by the checks:") and "collapse (D1xx)" in empty


def test_render_console_prints(capsys):
    from rich.console import Console

    from tunecard.doctor import render_console

    console = Console(record=True, width=100)
    console.print(render_console(card("missing_cells.md")))
    output = console.export_text()
    assert "Could not read" in output and "missing Accuracy, F1" in output


def test_doctor_command_json_and_strict(capsys):
    code = doctor_command(CARDS / "collapse_binary_recall1.md", as_json=True, strict=True)
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["source"] == "card" and data["summary"]["error"] >= 1
    assert data["findings"][0]["code"] == "D101" and data["findings"][0]["name"] == "collapse-one-class"
    assert doctor_command(CARDS / "collapse_binary_recall1.md", as_json=True, strict=False) == 0
    capsys.readouterr()


def test_doctor_command_missing_path(tmp_path, capsys):
    assert doctor_command(tmp_path / "nope", as_json=True, strict=False) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "E450"
    assert doctor_command(tmp_path, as_json=False, strict=False) == 2  # a folder with nothing in it


def test_every_code_is_documented():
    doc = (Path(__file__).parents[1] / "docs" / "doctor.md").read_text(encoding="utf-8")
    for code, info in CODES.items():
        assert f"{code} {info.name}" in doc or f"{code}` `{info.name}" in doc or (code in doc and info.name in doc)


def test_fuzzed_cards_never_break_a_check():
    """Lines of real cards, shuffled, cut and mixed with noise: every check runs or reports what it could not read."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    pool = []
    for path in sorted(CARDS.glob("*.md")):
        pool += path.read_bytes().decode("utf-8", errors="replace").splitlines()
    noise = st.text(alphabet="|-:0123456789.eE+ nalogNLOG{}'#*x\t", max_size=40)
    lines = st.lists(st.one_of(st.sampled_from(pool), noise), max_size=60)

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(lines)
    def run(card_lines):
        report = diagnose_card("\n".join(card_lines), installed=TRAINER_VERSIONS)
        broken = [item for item in report.unparsed if item.startswith("check ") or "could not be read (" in item]
        assert not broken, broken
        json.dumps(report.to_dict(), allow_nan=False)

    run()


@pytest.mark.parametrize("tag", sorted(name for name, task in TASK_ALIASES.items() if task == MULTI_LABEL_TASK))
def test_a_card_tagged_with_any_multi_label_spelling_of_the_task_table_is_multi_label(tag):
    """The card's task names are the readers' table's (data.TASK_ALIASES); a multi-label model's pipeline tag is
    text-classification, so the tag decides."""
    text = f"---\npipeline_tag: text-classification\ntags:\n- {tag}\n---\n# model\n"
    assert parse_card(text).task == MULTI_LABEL_TASK
    assert parse_card(text.replace(f"- {tag}\n", "- generated_from_trainer\n")).task == "text-classification"


def test_a_pipeline_tag_that_is_no_string_does_not_break_the_task_reading():
    text = "---\npipeline_tag: [text-classification, multilabel]\ntags:\n- multilabel\n---\n# model\n"
    assert parse_card(text).task == MULTI_LABEL_TASK  # the list is no name; the tag still is


# --- score columns under a prefix (Keras callback cards, multi-task heads) ---------------------------------------


def test_keras_metric_callback_scores_are_the_evaluation_scores():
    """A Keras card names the KerasMetricCallback's scores 'Train F1' ... although they are computed on the
    evaluation set (there is a Validation Loss and no Validation F1): P = R = F1 = 0 at every epoch is no entity."""
    report = card("keras_callback_no_entities.md")
    finding = only(report, "D102")
    assert finding.severity == ERROR and "every evaluation" in finding.title
    assert "collapse and chance-level" not in " ".join(report.not_run)


def test_keras_validation_columns_are_the_scores_and_training_ones_are_not():
    text = (CARDS / "keras_validation_accuracy.md").read_text(encoding="utf-8")
    parsed = parse_card(text)
    assert [row["accuracy"].value for row in parsed.table.rows] == [0.8847, 0.8979, 0.9012]
    assert parsed.headline["accuracy"].value == 0.9012
    assert parsed.task != "token-classification"  # 'Train Accuracy' is no entity type called 'train'
    report = card("keras_validation_accuracy.md")
    assert not codes(report, ERROR, WARNING), [f.to_dict() for f in report.findings]
    # the same card with the validation accuracy stuck while the training accuracy climbs: frozen predictions
    stuck = text.replace("| 0.8847 ", "| 0.6402 ").replace("| 0.8979 ", "| 0.6402 ").replace("| 0.9012 ", "| 0.6402 ")
    stuck = stuck.replace("Validation Accuracy: 0.9012", "Validation Accuracy: 0.6402")
    report = diagnose_card(stuck, installed=TRAINER_VERSIONS)
    assert "D103" in codes(report, ERROR, WARNING), [f.to_dict() for f in report.findings]


def test_multitask_prefixed_classifier_scores_show_its_collapse():
    """'Cls Accuracy', 'Cls F1' ... of a joint LM + classifier model are the classifier's scores, not an entity
    type 'cls': weighted recall = accuracy, precision = accuracy², F1 = 2a²/(1+a) at every row is one class."""
    report = card("multitask_prefixed_collapse.md")
    finding = only(report, "D101")
    assert finding.severity == ERROR and "every evaluation" in finding.title
    parsed = parse_card((CARDS / "multitask_prefixed_collapse.md").read_text(encoding="utf-8"))
    assert parsed.task is None and parsed.headline["f1"].value == 0.4647


def test_untagged_card_with_f1_below_the_harmonic_mean_is_an_averaged_classifier_not_a_warning():
    """A card naming no task whose F1 is below 2PR/(P+R) at every row: most such cards are classifiers reporting
    macro or weighted averages, which are at most the harmonic mean; F1 above it stays a warning."""
    report = card("untagged_macro_scores.md")
    finding = only(report, "D505")
    assert finding.severity == INFO and "names no task" in finding.remedy
    assert not codes(report, ERROR, WARNING), [f.to_dict() for f in report.findings]
    text = (CARDS / "untagged_macro_scores.md").read_text(encoding="utf-8").replace("| 0.6517 |", "| 0.7517 |")
    finding = only(diagnose_card(text, installed=TRAINER_VERSIONS), "D505")
    assert finding.severity == WARNING and "row 2" in finding.evidence


def test_the_2021_model_index_layout_is_read():
    """`model_index:` with one `metric:` per result (the Trainer of transformers 4.9-4.10): its value is compared with
    the headline (here the epoch-2 value against a headline of epoch 3); `model-index: {name: ...}` alone is no
    unreadable header."""
    report = card("old_model_index.md")
    assert report.unparsed == []
    assert "D509" in codes(report, WARNING), [f.to_dict() for f in report.findings]
    text = (CARDS / "old_model_index.md").read_text(encoding="utf-8")
    parsed = parse_card(text)
    assert parsed.model_index[0]["metrics"]["matthews_correlation"].value == 0.5617
    assert parsed.task == "text-classification"
    header_end = text.index("---", 3)
    bare = "---\nlicense: mit\nmodel-index:\n  name: distilroberta-cola-2021\n" + text[header_end:]
    assert not diagnose_card(bare, installed=TRAINER_VERSIONS).unparsed


def test_evaluate_results_printed_as_dicts_are_read_as_numbers():
    """compute_metrics returning `evaluate`'s dicts as they are prints 'F1: {'f1': 0.76}' in every cell: the one
    number named as its column is the value, so the one-class rows are seen."""
    report = card("evaluate_dict_cells.md")
    finding = only(report, "D101")
    assert finding.severity == ERROR and "every evaluation" in finding.title
    parsed = parse_card((CARDS / "evaluate_dict_cells.md").read_text(encoding="utf-8"))
    assert parsed.headline["recall"].value == 1.0 and parsed.table.rows[0]["accuracy"].value == 0.6213
    # a one-item dict named otherwise is still a per-entity item
    other = parse_card("It achieves the following results on the evaluation set:\n- Loc: {'f1': 0.91}\n")
    assert other.headline["loc_f1"].value == 0.91


def test_ner_card_entity_counts_give_a_tiny_evaluation_set_away():
    """seqeval's per-type Number columns count the gold entities: 7 is a tiny evaluation set (D608), and an overall
    F1 repeating over three evaluations is then its coarse granularity (D103 info), not frozen predictions."""
    text = (CARDS / "tiny_entity_counts_ner.md").read_text(encoding="utf-8")
    report = card("tiny_entity_counts_ner.md")
    tiny = only(report, "D608")
    assert tiny.severity == WARNING and "7 gold entities" in tiny.evidence and tiny.data["entities"] == 7
    assert only(report, "D103").severity == INFO
    assert only(report, "D102").severity == INFO  # the first two evaluations, recovered from
    # the same scores over 700 entities: no tiny set, and the F1 that never moves is a warning again
    many = text.replace("| 3           |", "| 300         |").replace("| 4           |", "| 400         |")
    many = many.replace("Date Number: 3", "Date Number: 300").replace("Name Number: 4", "Name Number: 400")
    report = diagnose_card(many, installed=TRAINER_VERSIONS)
    assert "D608" not in codes(report) and only(report, "D103").severity == WARNING


def test_token_accuracy_frozen_while_no_entity_is_predicted_is_left_to_the_collapse_finding():
    """Three first evaluations with no entity predicted have the same token accuracy (the share of O tags): that is
    D102's finding (info: the model recovered), not a frozen-metric warning."""
    text = (CARDS / "tiny_entity_counts_ner.md").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("| 1.8102"))
    extra = lines[first].replace("| 1.8102        | 1.0   | 20   | 0.9013 ", "| 1.9500        | 0.5   | 10   | 0.9800 ")
    report = diagnose_card("".join(lines[:first] + [extra] + lines[first:]), installed=TRAINER_VERSIONS)
    assert only(report, "D102").severity == INFO
    assert all("0.8412" not in f.evidence for f in report.findings if f.code == "D103")
    assert "D103" not in codes(report, ERROR, WARNING)


def test_a_jumping_last_logged_training_loss_with_steady_evaluations_is_no_divergence():
    """The card's Training Loss is one logging window's mean: 0.41, 0.53, 0.05, 1.02 at batch 4 went down to a
    tenth of its start in between, and the F1 holds at its best: noise (D302 info), not a model unlearning. The same
    losses with the F1 falling at the end stay the error."""
    finding = only(card("noisy_logged_training_loss.md"), "D302")
    assert finding.severity == INFO and "0.0518" in finding.evidence and "0.6822" in finding.evidence
    text = (CARDS / "noisy_logged_training_loss.md").read_text(encoding="utf-8")
    worse = text.replace("| 0.9105          | 0.6822 |", "| 0.9105          | 0.5904 |").replace("F1: 0.6822", "F1: 0.5904")
    assert only(diagnose_card(worse, installed=TRAINER_VERSIONS), "D302").severity == ERROR


def test_best_not_last_by_one_example_of_a_tiny_evaluation_set_is_noise():
    """Accuracy 0.8333 then 0.7917 are 20 and 19 of 24 (D608): the 'best' epoch is one example ahead, within one
    standard error of an accuracy on 24 examples, so D402 is info. The same gap on a large set stays a warning."""
    report = card("tiny_eval_best_not_last.md")
    assert only(report, "D608").data["examples"] == 24
    best = only(report, "D402")
    assert best.severity == INFO and "standard error" in best.evidence
    text = (CARDS / "tiny_eval_best_not_last.md").read_text(encoding="utf-8")
    large = (text.replace("| 0.6667   |", "| 0.6671   |").replace("| 0.8333   |", "| 0.8342   |")
             .replace("| 0.7917   |", "| 0.7903   |").replace("Accuracy: 0.7917", "Accuracy: 0.7903"))
    report = diagnose_card(large, installed=TRAINER_VERSIONS)
    assert "D608" not in codes(report) and only(report, "D402").severity == WARNING


def test_a_speech_recognition_loss_is_not_held_against_the_accuracy():
    """A wav2vec2 card with a WER column: its validation loss is the CTC loss over transcripts, so accuracy 1.0 with a
    loss of 0.81-1.09 proves no broken metric (D510 does not run, and says why). Without the WER column it would."""
    report = card("speech_ctc_with_class_scores.md")
    assert "D510" not in codes(report)
    assert any("speech recognition" in reason for reason in report.not_run)
    text = (CARDS / "speech_ctc_with_class_scores.md").read_text(encoding="utf-8")
    plain = "\n".join(line.rsplit("|", 2)[0] + "|" if line.startswith("|") else line for line in text.splitlines())
    plain = plain.replace("- Wer: 0.9314\n", "")
    assert "D510" in codes(diagnose_card(plain, installed=TRAINER_VERSIONS), ERROR)


def test_the_accuracy_of_a_one_class_row_is_a_class_share_not_a_tiny_set():
    """Accuracy 0.1667 with macro F1 0.0476 = 2a/((1+a)6) at every row: six balanced classes, one predicted for
    everything (D103 / D203 errors). 0.1667 = 1/6 is the class's share, not 1 of 6 examples: no D608 when the
    training set is large (9600 steps of 8)."""
    report = card("balanced_multiclass_one_class.md")
    assert {"D103", "D203"} <= codes(report, ERROR)
    assert "D608" not in codes(report)
