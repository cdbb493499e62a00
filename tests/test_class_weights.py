"""Class weights: validated, resolved from the training data, applied in the Trainer's loss the same way on packed
and padded batches (and so in the speed layer's training-mode check), and stated on the card."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import WNUT_SAMPLE, quick_ner_values

from tunecard.config import build_config
from tunecard.data import read_corpus
from tunecard.data.example import Corpus, TextExample, TokenExample
from tunecard.errors import ConfigError
from tunecard.training.loss import TrainingLoss, class_weights


# --- the setting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("balanced", "balanced"), ("None", "none"), (None, "none"),
                                             ({"pos": 3, 1: 0.5}, {"pos": 3.0, "1": 0.5})])
def test_accepted_settings(value, expected, tmp_path):
    assert build_config(None, {"class_weights": value, "output": str(tmp_path)}).class_weights == expected


@pytest.mark.parametrize("value, said", [("balance", "did you mean balanced"), ({"pos": -1}, "positive number"),
                                         ({"pos": float("nan")}, "positive number"), ({}, "empty mapping"),
                                         ({"pos": True}, "positive number")])
def test_refused_settings_are_e206(value, said, tmp_path):
    with pytest.raises(ConfigError) as error:
        build_config(None, {"class_weights": value, "output": str(tmp_path)})
    assert error.value.code == "E206" and "class_weights" in error.value.message and said in error.value.message


def test_set_from_the_command_line(tmp_path):
    config = build_config(None, {"output": str(tmp_path)}, ["class_weights={negative: 1, positive: 4}"])
    assert config.class_weights == {"negative": 1.0, "positive": 4.0}


# --- resolved against the training data ------------------------------------------------------------------------


def _texts(labels: list[str]) -> Corpus:
    return Corpus(path="t", task="text-classification", format="csv",
                  examples=[TextExample(text=str(i), label=label) for i, label in enumerate(labels)])


def test_balanced_is_scikit_learns_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    gold = ["neg"] * 9 + ["pos"] * 3 + ["mid"] * 6
    weights = class_weights("balanced", "text-classification", ["mid", "neg", "pos"], _texts(gold))
    expected = compute_class_weight("balanced", classes=np.array(["mid", "neg", "pos"]), y=gold)
    assert list(weights.values()) == pytest.approx(list(expected))


def test_multi_label_balanced_weights_positives_by_negatives_over_positives():
    corpus = Corpus(path="t", task="multi-label-classification", format="text-jsonl", examples=[
        TextExample(text="a", label=None, labels=labels) for labels in (["x", "y"], ["y"], ["y"], [])])
    assert class_weights("balanced", "multi-label-classification", ["x", "y"], corpus) == {"x": 3.0, "y": 1 / 3}
    every = Corpus(path="t", task="multi-label-classification", format="text-jsonl",
                   examples=[TextExample(text="a", label=None, labels=["x"])] * 2)
    assert class_weights("balanced", "multi-label-classification", ["x"], every) == {"x": 1.0}  # no negatives


def test_ner_weights_by_type_or_tag_and_unknown_names_are_e211():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    corpus = Corpus(path="t", task="token-classification", format="conll",
                    examples=[TokenExample(tokens=["a"] * 5, tags=["O", "B-PER", "I-PER", "B-LOC", "O"])])
    weights = class_weights({"PER": 5, "I-PER": 2, "O": 0.5}, "token-classification", tags, corpus)
    assert weights == {"O": 0.5, "B-PER": 5.0, "I-PER": 2.0, "B-LOC": 1.0, "I-LOC": 1.0}  # the tag wins over its type
    balanced = class_weights("balanced", "token-classification", tags, corpus)
    assert balanced["O"] == pytest.approx(5 / (5 * 2)) and balanced["B-PER"] == pytest.approx(5 / 5)
    assert balanced["I-LOC"] == 1.0  # a tag the training words never have
    with pytest.raises(ConfigError) as error:
        class_weights({"PERSON": 5}, "token-classification", tags, corpus)
    assert error.value.code == "E211" and "PERSON" in error.value.message and "'LOC'" in error.value.message


def test_unknown_class_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        class_weights({"postive": 3}, "text-classification", ["negative", "positive"], _texts(["negative"]))
    assert error.value.code == "E211" and "['negative', 'positive']" in error.value.message


# --- the loss ----------------------------------------------------------------------------------------------------


def test_losses_are_torchs_weighted_losses():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    weights = [1.0, 2.0, 0.5]
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights), label_smoothing=0.1)
    assert TrainingLoss("text-classification", weights, 0.1)(logits, labels).item() == pytest.approx(expected.item())
    targets = torch.tensor([[1.0, 0.0, 1.0]] * 6)
    expected = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor(weights))
    assert TrainingLoss("multi-label-classification", weights)(logits, targets).item() == pytest.approx(expected.item())
    tokens = torch.tensor([[0, 1, -100, 2]])
    found = TrainingLoss("token-classification", weights)(logits[:4].unsqueeze(0), tokens)
    expected = F.cross_entropy(logits[[0, 1, 3]], torch.tensor([0, 1, 2]), weight=torch.tensor(weights))
    assert found.item() == pytest.approx(expected.item())  # -100 (context, padding) is not scored


def _ner_setup(no_dropout_bert):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tunecard.encoding.batching import PadCollator
    from tunecard.encoding.encoder import Encoder
    from tunecard.training.inputs import label_names

    corpus = read_corpus(WNUT_SAMPLE / "train.conll")
    corpus.examples = corpus.examples[:16]
    tags = label_names(corpus)
    tokenizer = AutoTokenizer.from_pretrained(no_dropout_bert)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(no_dropout_bert, num_labels=len(tags))
    features = Encoder(tokenizer, {t: i for i, t in enumerate(tags)}, 64).encode_tokens(corpus.examples)
    return model, features, PadCollator(tokenizer.pad_token_id), tags, corpus


def test_weighted_ner_loss_is_the_same_packed_and_padded_and_the_check_compares_it(no_dropout_bert):
    """The training-mode check computes the run's loss: the weighted one passes, packed against padded; a loss that
    depends on where tokens sit in the rows (what a per-position weight would be) fails it."""
    from tunecard.speed import check
    from tunecard.speed.packing import choose_collator

    model, features, padded, tags, corpus = _ner_setup(no_dropout_bert)
    collator, layout, _ = choose_collator(model, features, padded, padded.pad_token_id, padding_free=True)
    assert layout == "packed, padding-free"
    weights = class_weights("balanced", "token-classification", tags, corpus)
    loss = TrainingLoss("token-classification", [weights[t] for t in tags])
    batches = check.check_batches(features)
    with collator.passes(model):
        reference = check.step_values(model, [padded(items) for items in batches], loss)
        packed = check.step_values(model, [collator(items) for items in batches], loss)
        assert check.compare(reference, packed) is None
        unweighted = check.step_values(model, [collator(items) for items in batches])
        assert check.compare(reference, unweighted) is not None  # the weights change the loss: it is what is compared
        ones = TrainingLoss("token-classification", [1.0] * len(tags))  # weights of 1: the model's own loss
        assert check.compare(unweighted, check.step_values(model, [padded(items) for items in batches], ones)) is None

        def by_position(logits, labels):  # not a function of the (logit, label) pairs alone
            flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
            return (flat * torch.linspace(0.5, 1.5, flat.numel())).sum() / (labels != -100).sum()

        mutated = check.compare(check.step_values(model, [padded(items) for items in batches], by_position),
                                check.step_values(model, [collator(items) for items in batches], by_position))
    assert mutated is not None and "loss" in mutated


# --- whole runs --------------------------------------------------------------------------------------------------


def _run(values, tmp_path, name):
    from tunecard.pipeline import train

    return train(build_config(None, {**values, "output": str(tmp_path / name)}), progress=False)


def test_weights_reach_the_trainers_loss_and_the_card(tiny_bert_cased, tmp_path):
    values = quick_ner_values(tiny_bert_cased, tmp_path)
    plain = _run(values, tmp_path, "plain")
    heavy = _run({**values, "class_weights": {"person": 20.0}}, tmp_path, "heavy")
    step_losses = [[s["loss"] for s in run.history["steps"]] for run in (plain, heavy)]
    assert step_losses[1][0] != pytest.approx(step_losses[0][0], rel=1e-3)  # from the first step on
    assert heavy.metrics["class_weights"]["weights"]["B-person"] == 20.0
    assert heavy.metrics["class_weights"]["weights"]["I-person"] == 20.0
    assert heavy.metrics["speed"]["fallback"] is None  # the check passed with the weighted loss
    card = (heavy.output / "README.md").read_text()
    assert "- class_weights: per label: " in card and "B-person 20" in card and "### Class weights" in card
    # the card's hyperparameter line, its Class weights section and the HTML report give the same weights text
    from tunecard.reporting.report import write_report

    weights = ", ".join(f"{label} {weight:.4g}" for label, weight in heavy.metrics["class_weights"]["weights"].items())
    page = write_report(heavy.output, tmp_path / "heavy.html").read_text()
    assert f"- class_weights: per label: {weights}\n" in card
    assert f"`class_weights: per label`: {weights}. " in card
    assert f"Class weights (<code>per label</code>): {weights}." in page
    assert plain.metrics["class_weights"] is None and "class_weights" not in (plain.output / "README.md").read_text()


def test_an_unknown_label_stops_the_run_before_training(tiny_bert_cased, tmp_path):
    from tunecard.pipeline import train

    config = build_config(None, {**quick_ner_values(tiny_bert_cased, tmp_path), "class_weights": {"persn": 3}})
    with pytest.raises(ConfigError) as error:
        train(config, progress=False)
    assert error.value.code == "E211" and "'person'" in error.value.message
    assert not (tmp_path / "run").exists()


def _multi_label_file(path, n: int = 16):
    """n texts with 0-3 topic labels each (topic words in the text), as JSONL."""
    import json
    import random

    rng, topics = random.Random(0), {"sport": "goal match", "music": "song band", "film": "movie actor"}
    lines = []
    for _ in range(n):
        labels = sorted(t for t in topics if rng.random() < 0.3)
        lines.append(json.dumps({"text": " ".join(["it was"] + [topics[t] for t in labels]), "labels": labels}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


# The same 4 examples a step, taken as one batch of 4 or as 2 + 2 by gradient accumulation, on a model without
# dropout: the losses differ only by the order of float sums (1e-4 relative, as tests/test_distributed.py).
@pytest.mark.parametrize("task, weights", [("ner", "balanced"), ("multi-label", None), ("multi-label", "balanced")])
def test_gradient_accumulation_records_the_whole_batchs_loss_with_and_without_weights(task, weights,
                                                                                        no_dropout_bert, tmp_path):
    """Each micro-batch contributes its summed (weighted) loss over the step's summed weights: the step loss and the
    gradient norm are the whole batch's. A mean of the micro-batches' own means (what dividing each by the
    accumulation steps gives) differs as soon as their weights differ; the model's own multi-label BCE was added up
    over the micro-batches (twice the loss)."""
    train_file = str(WNUT_SAMPLE / "train.conll") if task == "ner" else _multi_label_file(tmp_path / "t.jsonl")
    values = dict(task=task, model=str(no_dropout_bert), train=train_file, num_epochs=2, max_train_examples=16,
                  learning_rate=1e-3, precision="fp32", save_strategy="no", class_weights=weights or "none")
    whole = _run({**values, "train_batch_size": 4}, tmp_path, "whole")
    split = _run({**values, "train_batch_size": 2, "gradient_accumulation_steps": 2}, tmp_path, "split")
    assert (whole.metrics["class_weights"] is None) == (weights is None)
    got, want = split.history["steps"], whole.history["steps"]
    assert [s["step"] for s in got] == [s["step"] for s in want] == list(range(1, 9))
    for mine, theirs in zip(got, want):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4), mine["step"]
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-4), mine["step"]


def test_a_steps_loss_over_micro_batches_is_the_whole_batchs_weighted_mean():
    """parts(): summed losses over the summed denominators of several batches is their union's weighted mean
    (torch's), label smoothing included; a micro-batch's own mean would weigh batches alike."""
    torch.manual_seed(0)
    weights = [0.2, 3.0, 1.0]
    logits, labels = torch.randn(2, 5, 3), torch.tensor([[0, 0, 0, -100, 1], [1, 2, -100, -100, -100]])
    loss = TrainingLoss("token-classification", weights, label_smoothing=0.1)
    whole = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), weight=torch.tensor(weights),
                            label_smoothing=0.1)
    parts = [loss.parts(logits[i:i + 1], labels[i:i + 1]) for i in range(2)]
    step = sum(loss.denominator(labels[i:i + 1]) for i in range(2))
    assert step.item() == pytest.approx(0.2 * 3 + 3.0 * 2 + 1.0)
    assert (sum(total for total, _ in parts) / step).item() == pytest.approx(whole.item(), rel=1e-6)
    assert (sum(total / d for total, d in parts) / 2).item() != pytest.approx(whole.item(), rel=1e-2)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    multi = TrainingLoss("multi-label-classification", weights)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], targets, pos_weight=torch.tensor(weights))
    pieces = [multi.parts(logits[i:i + 1, 0], targets[i:i + 1]) for i in range(2)]
    assert (sum(t for t, _ in pieces) / sum(d for _, d in pieces)).item() == pytest.approx(expected.item(), rel=1e-6)
