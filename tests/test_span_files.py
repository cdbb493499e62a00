"""Span files and encodings (issue 29 items 9 and 11, issue 30 item 7), each fault reproduced first:

* span JSONL evaluation text is split into words without looking at its gold spans, and scored by character
  offsets (a gold boundary inside a word is a miss); training reads cut words at span boundaries and say so
  (console, metrics.json's data section, the card's data table);
* overlapping spans: an error counting every overlap of the file, or `overlapping_spans: longest | first`
  with the dropped spans counted per split (data stats, console, card);
* per-split encodings, and a warning when a file given as latin-1 is valid UTF-8 with non-ASCII text.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunecard.config import build_config
from tunecard.data import ReadOptions, read_corpus, stream_corpus
from tunecard.data.stats import corpus_stats
from tunecard.errors import ConfigError, DataError
from tunecard.metrics import EntityScorer


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def span_lines(*records) -> str:
    return "".join(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n" for text, spans in records)


# ------------------------------------------------------------------ words of span files


def test_evaluation_words_do_not_depend_on_the_gold_spans(tmp_path):
    """Two files with the same text and different gold spans give the same words when read for evaluation."""
    text = "New Yorkers love Paris."
    one = read_corpus(write(tmp_path, "a.jsonl", span_lines((text, [[4, 8, "LOC"], [17, 22, "LOC"]]))))
    two = read_corpus(write(tmp_path, "b.jsonl", span_lines((text, [[0, 3, "LOC"]]))))
    assert one.examples[0].tokens == two.examples[0].tokens == ["New", "Yorkers", "love", "Paris", "."]
    assert one.examples[0].spans == [(4, 8, "LOC"), (17, 22, "LOC")]
    assert one.span_counts == {"spans": 2, "overlapping_pairs": 0, "dropped_spans": 0, "split_tokens": 0,
                               "spans_inside_words": 1}
    # Read for training, the word is cut where the span ends inside it, and the cut is counted.
    train = read_corpus(one.path, ReadOptions(split_at_spans=True))
    assert train.examples[0].tokens == ["New", "York", "ers", "love", "Paris", "."]
    assert train.span_counts["split_tokens"] == 1 and any("split" in w for w in train.warnings)


def test_scoring_by_character_offsets_misses_a_gold_boundary_inside_a_word():
    scorer = EntityScorer()
    gold = [("LOC", 4, 8), ("LOC", 17, 22)]
    predicted = [("LOC", 0, 3), ("LOC", 4, 11), ("LOC", 17, 22)]  # "New", "Yorkers", "Paris"
    scorer.update_entities(gold, predicted, ["O", "B-LOC", "O", "B-LOC", "O"], ["B-LOC", "B-LOC", "O", "B-LOC", "O"])
    result = scorer.result()
    assert (result["gold_entities"], result["predicted_entities"], result["correct_entities"]) == (2, 3, 1)
    assert result["confusion"]["LOC"]["(missed)"] == 1 and result["tokens"] == 5


def test_baselines_score_span_files_as_the_model_is():
    from tunecard.metrics import all_o_baseline, majority_tag_baseline

    gold = [(0, 1, "LOC"), (1, 2, "LOC")]  # two gold spans inside the one word "AB"
    spans = [(gold, [(0, 2)])]
    assert all_o_baseline([["B-LOC"]])["gold_entities"] == 1  # read from the word's tags
    assert all_o_baseline([["B-LOC"]], eval_spans=spans)["gold_entities"] == 2
    by_tags = majority_tag_baseline([["AB"]], [["B-LOC"]], [["AB"]], [["B-LOC"]])
    by_spans = majority_tag_baseline([["AB"]], [["B-LOC"]], [["AB"]], [["B-LOC"]], eval_spans=spans)
    assert (by_tags["correct_entities"], by_spans["correct_entities"]) == (1, 0)


def _every_word_tagged(base, folder, tag: str):
    """A token classifier that tags every word `tag` (its head's bias decides)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    labels = ["O", "B-LOC", "I-LOC"]
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[labels.index(tag)] = 20.0
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def test_evaluate_scores_span_files_against_the_gold_character_spans(tiny_bert_cased, tmp_path):
    from tunecard.inference.predictor import evaluate_folder

    folder = _every_word_tagged(tiny_bert_cased, tmp_path / "model", "B-LOC")
    data = write(tmp_path, "test.jsonl", span_lines(("New Yorkers love Paris.", [[4, 8, "LOC"], [17, 22, "LOC"]]),
                                                    ("AB went home", [[0, 1, "LOC"], [1, 2, "LOC"]])))
    result = evaluate_folder(folder, data, precision="fp32")
    # Every word is predicted as its own LOC: "Paris" and "home"... only "Paris" has gold boundaries.
    assert result["gold_entities"] == 4  # the file's spans, not the 3 a word-level reading of its tags would give
    assert result["predicted_entities"] == 5 + 3 and result["correct_entities"] == 1
    assert result["data"]["span_counts"]["spans_inside_words"] == 3
    assert any("inside a word" in w for w in result["data"]["warnings"])


# ------------------------------------------------------------------ overlapping and nested spans


OVERLAPS = span_lines(
    ("Bank of China opened", [[0, 13, "ORG"], [8, 13, "LOC"]]),  # nested
    ("plain text", []),
    ("Ann Lee Smith", [[0, 7, "PER"], [4, 13, "PER"], [0, 3, "PER"]]),  # two pairs: 0-7 with each other one
)


def test_overlapping_spans_error_counts_every_overlap_and_names_the_option(tmp_path):
    path = write(tmp_path, "a.jsonl", OVERLAPS)
    with pytest.raises(DataError) as caught:
        read_corpus(path)
    error = caught.value
    assert error.code == "E110" and error.line == 1
    assert "3 pair(s) of overlapping or nested spans in 2 record(s)" in error.message
    assert "overlapping_spans: longest" in error.fix and "first" in error.fix


@pytest.mark.parametrize("policy, third_record, dropped", [
    ("longest", [(0, 3, "PER"), (4, 13, "PER")], 2),  # 4-13 kept first; 0-3 does not overlap it
    ("first", [(0, 7, "PER")], 3),  # 0-7 is listed first; both others overlap it
])
def test_overlapping_spans_longest_or_first_drop_the_rest_and_count_them(tmp_path, policy, third_record, dropped):
    path = write(tmp_path, "a.jsonl", OVERLAPS)
    corpus = read_corpus(path, ReadOptions(overlapping_spans=policy))
    assert corpus.examples[0].spans == [(0, 13, "ORG")] and corpus.examples[2].spans == third_record
    assert corpus.span_counts["dropped_spans"] == dropped and corpus.span_counts["overlapping_pairs"] == 3
    assert any(f"{dropped} span(s) dropped" in w and policy in w for w in corpus.warnings)
    assert corpus_stats(corpus)["span_counts"]["dropped_spans"] == dropped


def test_data_stats_reports_dropped_spans(tmp_path):
    from tunecard.cli import app

    path = write(tmp_path, "a.jsonl", OVERLAPS)
    runner = CliRunner()
    failed = runner.invoke(app, ["data", "stats", str(path)])
    assert isinstance(failed.exception, DataError) and "overlapping_spans" in failed.exception.fix
    done = runner.invoke(app, ["data", "stats", str(path), "--overlapping-spans", "longest", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["span_counts"]["dropped_spans"] == 2
    table = runner.invoke(app, ["data", "stats", str(path), "--overlapping-spans", "first"])
    assert "spans dropped (overlapping_spans)" in table.stdout


def test_a_span_run_reports_dropped_spans_and_split_words_on_console_metrics_and_card(tiny_bert_cased, tmp_path):
    from rich.console import Console

    from tunecard.pipeline import train

    records = [("Ann Lee Smith met Bob in Paris.", [[0, 7, "PER"], [4, 13, "PER"], [18, 21, "PER"]]),
               ("New Yorkers love Paris.", [[4, 8, "LOC"], [17, 22, "LOC"]])] * 8
    train_file = write(tmp_path, "train.jsonl", span_lines(*records))
    dev_file = write(tmp_path, "dev.jsonl", span_lines(*records[:4]))
    config = build_config(None, dict(task="ner", model=str(tiny_bert_cased), train=str(train_file),
                                     validation=str(dev_file), output=str(tmp_path / "run"), max_steps=1,
                                     precision="fp32", save_strategy="no", overlapping_spans="longest"))
    console = Console(record=True, width=400)
    result = train(config, progress=False, console=console)
    shown = console.export_text()
    assert "8 span(s) dropped" in shown and "word(s) were split" in shown and "inside a word" in shown
    data = json.loads((result.output / "metrics.json").read_text())["data"]
    assert data["train"]["span_counts"] == {"spans": 32, "overlapping_pairs": 8, "dropped_spans": 8,
                                            "split_tokens": 8, "spans_inside_words": 0}
    assert data["validation"]["span_counts"]["split_tokens"] == 0
    assert data["validation"]["span_counts"]["spans_inside_words"] == 2
    metrics = json.loads((result.output / "metrics.json").read_text())
    gold = metrics["validation"]["gold_entities"]
    assert gold == data["validation"]["span_counts"]["spans"] == 8
    assert metrics["baselines"]["validation"]["all_o"]["gold_entities"] == gold  # scored the same way
    card = (result.output / "README.md").read_text()
    assert "8 dropped as overlapping; 8 words split at span boundaries" in card
    assert "2 start or end inside a word (scored as missed)" in card


# ------------------------------------------------------------------ encodings


def test_per_split_encodings(tmp_path):
    from tunecard.training.inputs import read_splits

    latin = write(tmp_path, "train.conll", "Café B-LOC\nvisit O\n".encode("latin-1"))
    utf8 = write(tmp_path, "valid.conll", "Café B-LOC\n".encode("utf-8"))
    config = build_config(None, dict(task="ner", train=str(latin), validation=str(utf8),
                                     encoding={"train": "latin-1", "validation": "utf-8"}))
    corpora = read_splits(config)
    assert corpora["train"].examples[0].tokens[0] == corpora["validation"].examples[0].tokens[0] == "Café"
    # The same from the command line's spelling, and one encoding still means every split.
    flags = build_config(None, dict(task="ner", train=str(latin), encoding="train=latin-1, validation=utf-8"))
    assert flags.encoding == {"train": "latin-1", "validation": "utf-8"}
    assert build_config(None, dict(task="ner", train=str(latin), encoding="latin-1")).read_options(
        "validation").encoding == "latin-1"
    with pytest.raises(ConfigError) as caught:
        build_config(None, dict(task="ner", train=str(latin), encoding={"train": "latin-7x"}))
    assert "latin-7x" in str(caught.value)
    with pytest.raises(ConfigError):
        build_config(None, dict(task="ner", train=str(latin), encoding={"dev": "utf-8"}))


@pytest.mark.parametrize("stream", [False, True])
def test_a_utf8_file_read_as_latin1_is_warned(tmp_path, stream):
    path = write(tmp_path, "valid.conll", "EU B-ORG\n\nCafé O\n".encode("utf-8"))
    options = ReadOptions(encoding="latin-1")
    corpus = stream_corpus(path, options) if stream else read_corpus(path, options)
    warning = next(w for w in corpus.warnings if "valid UTF-8" in w)
    assert str(path) in warning and "'CafÃ©'" in warning and "'Café'" in warning and "utf-8" in warning
    # A real Latin-1 file (not valid UTF-8), or plain ASCII, gets no such warning.
    latin = write(tmp_path, "l.conll", "Café O\n".encode("latin-1"))
    assert not any("UTF-8" in w for w in read_corpus(latin, options).warnings)
    ascii_file = write(tmp_path, "a.conll", b"EU B-ORG\n")
    assert read_corpus(ascii_file, ReadOptions(encoding="cp1252")).warnings == []
