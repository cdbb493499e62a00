"""ONNX export: the graph matches torch, both backends predict the same, int8 runs, and mistakes are refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import SAMPLE_TEXTS, WNUT_SAMPLE, saved_classifier
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.data.example import TokenExample
from tunecard.errors import ModelError
from tunecard.export import onnx as export
from tunecard.export.onnx import OnnxModel, export_onnx
from tunecard.inference.predictor import Predictor, evaluate_folder, words_with_offsets

runner = CliRunner()

TEXTS = SAMPLE_TEXTS


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_short, tmp_path_factory):
    tags = sorted({line.split()[-1] for line in (WNUT_SAMPLE / "train.conll").read_text(encoding="utf-8").splitlines()
                   if line.strip()})
    return saved_classifier(tiny_bert_short, tmp_path_factory.mktemp("ner"), True, tags)


@pytest.fixture(scope="module")
def cls_folder(tiny_bert_cased, tmp_path_factory):
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("cls"), False, ["negative", "neutral", "positive"])


@pytest.fixture(scope="module")
def ner_export(ner_folder, tmp_path_factory):
    # Run from an empty working directory: the export must write only into the run folder.
    workdir = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        paths = export_onnx(ner_folder, quantize="int8")
    assert list(workdir.iterdir()) == [], "the export left files in the working directory"
    return paths


@pytest.fixture(scope="module")
def cls_export(cls_folder):
    result = runner.invoke(app, ["export", str(cls_folder), "--onnx", "--quantize", "int8"])  # the CLI's way in
    assert result.exit_code == 0, result.output
    return sorted((cls_folder / "onnx").iterdir())


def test_export_writes_the_checked_files_and_reports_int8_agreement(ner_folder, ner_export):
    onnx_dir = ner_folder / "onnx"
    assert ner_export == [onnx_dir / "model.onnx", onnx_dir / "model.int8.onnx", onnx_dir / "export.json"]
    assert all(p.is_file() for p in ner_export)
    assert not [p for p in onnx_dir.iterdir() if p.name.startswith(".export-")]  # scratch folder cleaned up
    report = json.loads((onnx_dir / "export.json").read_text(encoding="utf-8"))
    fp32, int8 = report["files"]["model.onnx"], report["files"]["model.int8.onnx"]
    assert fp32["allclose"] and fp32["max_abs_diff"] < 1e-4 and fp32["argmax_agreement"] == 1.0
    assert fp32["compared_unit"] == "tokens" and fp32["compared"] > 100
    # int8 on a random tiny model: its accuracy means nothing, but the agreement must be measured and reported.
    assert 0.0 <= int8["argmax_agreement"] <= 1.0 and int8["compared"] == fp32["compared"]
    assert report["opset"] >= 17 and report["weights_sha256"]
    assert (onnx_dir / "model.int8.onnx").stat().st_size < (onnx_dir / "model.onnx").stat().st_size / 2


@pytest.mark.parametrize("which", ["ner", "cls"])
def test_onnx_logits_match_torch_on_shapes_other_than_the_export_sample(which, request):
    folder = request.getfixturevalue(f"{which}_folder")
    request.getfixturevalue(f"{which}_export")
    torch_model = Predictor(folder, precision="fp32").model
    onnx_model = OnnxModel(folder / "onnx" / "model.onnx", torch_model.config)
    generator = torch.Generator().manual_seed(1)
    for batch, length in [(1, 2), (3, 29), (7, 11)]:  # batch of one, the longest input, odd sizes
        input_ids = torch.randint(1000, 20000, (batch, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, length // 2 + 1:] = 0  # a padded row
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                  "token_type_ids": torch.zeros_like(input_ids)}
        with torch.inference_mode():
            expected = torch_model(**inputs).logits
        got = onnx_model(**inputs).logits
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


def _entity_keys(predictions):
    return [[(e["label"], e["start"], e["end"], e["text"]) for e in entities] for entities in predictions]


def test_ner_predictions_identical_for_both_backends(ner_folder, ner_export):
    by_torch = Predictor(ner_folder, precision="fp32", batch_size=4)
    by_onnx = Predictor(ner_folder, backend="onnx", batch_size=4)
    assert by_onnx.backend == "onnx" and not by_onnx.bf16
    long_words = [w for w, _, _ in words_with_offsets(by_torch.tokenizer, TEXTS[-1])]
    assert len(by_torch.encoder.encode_tokens([TokenExample(tokens=long_words, tags=[])])) > 2  # windowed
    torch_out, onnx_out = by_torch.predict(TEXTS), by_onnx.predict(TEXTS)
    assert _entity_keys(onnx_out) == _entity_keys(torch_out)
    for mine, theirs in zip(onnx_out, torch_out):
        assert [e["score"] for e in mine] == pytest.approx([e["score"] for e in theirs], abs=2e-4)
    assert sum(len(e) for e in torch_out) > 10  # the wide head tags plenty: the comparison is not empty == empty
    assert max(e["end"] for e in torch_out[-1]) > len(TEXTS[-1]) * 0.9  # entities found in the last window too
    assert by_onnx.max_length == by_torch.max_length == 32


def test_classification_predictions_identical_for_both_backends(cls_folder, cls_export):
    torch_out = Predictor(cls_folder, precision="fp32").predict(TEXTS)
    onnx_out = Predictor(cls_folder, backend="onnx").predict(TEXTS)
    assert [p["label"] for p in onnx_out] == [p["label"] for p in torch_out]
    for mine, theirs in zip(onnx_out, torch_out):
        assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=2e-4)
    # A random tiny encoder gives every text nearly the same [CLS] vector, hence one label; the probabilities
    # still differ per text, so the comparison covers different numbers.
    assert len({tuple(p["probabilities"].values()) for p in torch_out}) >= 3


@pytest.mark.parametrize("which", ["ner", "cls"])
def test_int8_export_predicts_well_formed_results(which, request):
    folder = request.getfixturevalue(f"{which}_folder")
    request.getfixturevalue(f"{which}_export")
    predictor = Predictor(folder, backend="onnx", quantized=True)
    assert predictor.model.path.name == "model.int8.onnx"
    # BERT masks padding out: int8's per-batch activation scales must not make every text run alone (4x slower)
    assert not predictor.one_text_per_pass and predictor.batch_size > 1
    predictions = predictor.predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    labels = set(predictor.id2label.values())
    for text, prediction in zip(TEXTS, predictions):
        if which == "ner":
            for entity in prediction:
                assert f"B-{entity['label']}" in labels and 0 <= entity["start"] < entity["end"] <= len(text)
                assert entity["text"] == text[entity["start"]:entity["end"]] and 0 < entity["score"] <= 1
        else:
            assert prediction["label"] in labels and set(prediction["probabilities"]) == labels
            assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_cli_predict_and_evaluate_agree_across_backends(ner_folder, ner_export):
    outputs = {}
    for backend in ("torch", "onnx"):
        result = runner.invoke(app, ["predict", str(ner_folder), "--backend", backend, "--precision", "fp32",
                                     "--text", TEXTS[0], "--text", TEXTS[2]])
        assert result.exit_code == 0, result.output
        outputs[backend] = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert _entity_keys([o["entities"] for o in outputs["onnx"]]) == _entity_keys([o["entities"] for o in outputs["torch"]])

    scores = {}
    for flags in (["--backend", "onnx"], ["--backend", "onnx", "--quantized"]):
        result = runner.invoke(app, ["evaluate", str(ner_folder), "--data", str(WNUT_SAMPLE / "dev.conll"), "--json",
                                     *flags])
        assert result.exit_code == 0, result.output
        scores[" ".join(flags)] = json.loads(result.stdout)
    by_torch = evaluate_folder(ner_folder, WNUT_SAMPLE / "dev.conll", precision="fp32")  # the CLI's auto may be bf16
    assert scores["--backend onnx"]["f1"] == by_torch["f1"] and scores["--backend onnx"]["sentences"] == 400
    assert scores["--backend onnx"]["loss"] == pytest.approx(by_torch["loss"], rel=1e-4)
    assert 0.0 <= scores["--backend onnx --quantized"]["f1"] <= 1.0


def test_cli_predict_with_an_explicit_onnx_file(cls_folder, cls_export, tmp_path):
    assert [p.name for p in cls_export] == ["export.json", "model.int8.onnx", "model.onnx"]
    target = tmp_path / "elsewhere" / "cls.onnx"
    target.parent.mkdir()
    shutil.copy(cls_folder / "onnx" / "model.onnx", target)
    outputs = []
    for flags in (["--onnx-file", str(target)], []):
        result = runner.invoke(app, ["predict", str(cls_folder), "--backend", "onnx", *flags, "--text", "fine"])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout)["prediction"])
    assert outputs[0] == outputs[1] and outputs[0]["label"] in {"negative", "neutral", "positive"}


def test_onnx_backend_without_an_export_names_the_command(tiny_bert_cased, tmp_path):
    folder = saved_classifier(tiny_bert_cased, tmp_path / "fresh", False, ["a", "b"])
    with pytest.raises(ModelError) as error:
        Predictor(folder, backend="onnx", quantized=True)
    assert error.value.code == "E321" and f"tunecard export {folder} --onnx --quantize int8" in str(error.value)
    result = runner.invoke(app, ["predict", str(folder), "--backend", "onnx", "--text", "x"])
    assert result.exit_code != 0 and isinstance(result.exception, ModelError) and result.exception.code == "E321"


@pytest.mark.parametrize("kwargs", [dict(backend="tensorrt"), dict(quantized=True), dict(onnx_file="m.onnx")])
def test_bad_backend_options_are_refused(cls_folder, kwargs):
    with pytest.raises(ModelError) as error:
        Predictor(cls_folder, **kwargs)
    assert error.value.code == "E324"


def test_unknown_quantization_is_refused_before_any_work(cls_folder, tmp_path):
    with pytest.raises(ModelError) as error:
        export_onnx(cls_folder, output=tmp_path / "m.onnx", quantize="int4")
    assert error.value.code == "E324" and "int8" in str(error.value)
    assert not any(tmp_path.iterdir())


@pytest.fixture
def retrained(ner_folder, ner_export, tmp_path):
    """A copy of the NER folder, exported, whose weights then changed (as a re-run into the folder would)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "retrained"
    shutil.copytree(ner_folder, folder)
    weights = load_file(folder / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] + 0.5
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_an_export_from_other_weights_is_refused(retrained):
    with pytest.raises(ModelError) as error:
        Predictor(retrained, backend="onnx")
    assert error.value.code == "E322" and "re-export" in str(error.value)


def test_a_graph_that_deviates_from_torch_is_not_written(retrained, ner_folder, tmp_path, monkeypatch):
    def export_stale_graph(model, sample, path, opset):
        # What a wrong graph looks like: right inputs and shapes, other numbers (the pre-change weights').
        shutil.copy(ner_folder / "onnx" / "model.onnx", path)

    monkeypatch.setattr(export, "_export_graph", export_stale_graph)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(ModelError) as error:
        export_onnx(retrained, output=target, quantize="int8")
    assert error.value.code == "E322" and "nothing was written" in str(error.value)
    assert list(target.parent.iterdir()) == []


def test_constrained_decoding_is_the_same_on_both_backends(ner_folder, ner_export):
    """`decoding: constrained` works on the ONNX backend's logits as on torch's, windows of a long text included."""
    by_torch = Predictor(ner_folder, precision="fp32", batch_size=4, decoding="constrained")
    by_onnx = Predictor(ner_folder, backend="onnx", batch_size=4, decoding="constrained")
    words = [[w for w, _, _ in words_with_offsets(by_torch.tokenizer, text)] for text in TEXTS]
    tags = [[tag for tag, _ in sentence] for sentence in by_torch.predict_words(words)]
    assert [[tag for tag, _ in sentence] for sentence in by_onnx.predict_words(words)] == tags
    argmax = [[tag for tag, _ in sentence] for sentence in Predictor(ner_folder, precision="fp32",
                                                                     batch_size=4).predict_words(words)]
    assert argmax != tags  # the wide head's best tags break IOB2 somewhere: decoding changed something
