"""The speed seam: one plan decides the levers from the config, the device and the model, applies them in one
context, undoes them, records them, and falls back to plain training when a training-mode check finds them
computing something else."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import WNUT_SAMPLE
from rich.console import Console

from tunecard import speed
from tunecard.config import build_config
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.errors import ConfigError
from tunecard.pipeline import train
from tunecard.speed import check
from tunecard.training.checkpoint import STATE_FILE, CheckpointKeeper
from tunecard.training.inputs import label_names, read_splits
from tunecard.training.recorder import RunRecorder

ADAMW = (torch.optim.AdamW, {"fused": True})


def _values(model, output, **overrides) -> dict:
    return dict(task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"), output=str(output),
                validation=str(WNUT_SAMPLE / "dev.conll"), num_epochs=1, max_train_examples=48, max_eval_examples=24,
                train_batch_size=16, learning_rate=1e-3, precision="fp32", save_strategy="no", **overrides)


def _loaded(model_folder, config):
    corpora = read_splits(config)
    labels = label_names(corpora["train"])
    tokenizer = load_tokenizer(str(model_folder))
    model = load_model(str(model_folder), config.task, dict(enumerate(labels)))
    features = Encoder(tokenizer, {label: i for i, label in enumerate(labels)}, 128).encode_tokens(
        corpora["train"].examples)
    return tokenizer, model, features


def test_speed_off_uses_no_lever_and_trains_as_auto_does(no_dropout_bert, tmp_path):
    auto = train(build_config(None, _values(no_dropout_bert, tmp_path / "auto")), progress=False)
    off = train(build_config(None, _values(no_dropout_bert, tmp_path / "off", speed="off")), progress=False)
    record = off.metrics["speed"]
    assert record["mode"] == "off" and record["batches"] == "padded" and record["fallback"] is None
    assert all(not lever["used"] and lever["note"] == "speed: off" for lever in record["levers"].values())
    used = {name for name, lever in auto.metrics["speed"]["levers"].items() if lever["used"]}
    assert {"packing", "padding_free", "fuse_qkv", "sparse_embedding"} <= used
    # The same steps (dropout is 0 in this model): packed or padded, fused or not, sparse rows or dense.
    auto_losses = [step["loss"] for step in auto.history["steps"]]
    assert auto_losses == pytest.approx([step["loss"] for step in off.history["steps"]], abs=1e-4)
    saved = json.loads((auto.output / "metrics.json").read_text())["speed"]
    assert saved == auto.metrics["speed"]
    card = (auto.output / "README.md").read_text()
    assert "- Speed layer: `speed: auto` on cpu" in card and "  - fuse_qkv: used" in card
    assert "  - packing: not used (speed: off)" in (off.output / "README.md").read_text()


def test_a_lever_that_computes_something_else_in_training_falls_back_and_says_so(no_dropout_bert, tmp_path,
                                                                                monkeypatch):
    """Packing passes its evaluation-mode check, but the padding-free attention's written-out backward (which
    only training runs) is broken here: the training-mode check sees the gradients differ, and the run trains
    with plain padded batches, with a note on the console, in metrics.json and on the card."""
    from tunecard.speed import attention

    backward = attention._PackedRowsAttention.backward

    def doubled(ctx, grad):
        grads = backward(ctx, grad)
        return (grads[0] * 2, *grads[1:])

    monkeypatch.setattr(attention._PackedRowsAttention, "backward", staticmethod(doubled))
    console = Console(record=True, width=200)
    result = train(build_config(None, _values(no_dropout_bert, tmp_path / "run")), progress=False, console=console)
    record = result.metrics["speed"]
    assert record["fallback"].startswith("the training-mode check found the gradient of ")
    assert record["batches"] == "padded" and result.metrics["training"]["batches"] == "padded"
    assert not any(lever["used"] for lever in record["levers"].values())
    assert "training with plain padded batches" in console.export_text()
    assert "fell back to plain padded training" in (result.output / "README.md").read_text()


def test_a_lever_the_model_cannot_take_in_training_falls_back_instead_of_failing(no_dropout_bert, tmp_path,
                                                                                 monkeypatch):
    """A training step that raises with the levers (a model whose own code edits a fused projection's output in a
    way autograd refuses, say) is a failed check: the run trains with plain padded batches and says why."""
    from tunecard.speed import fused_qkv

    def refuses(self, x):
        raise RuntimeError("Output 0 of SplitWithSizes is a view and is being modified inplace.\nmore")

    monkeypatch.setattr(fused_qkv.FusedProjection, "forward", refuses)
    result = train(build_config(None, _values(no_dropout_bert, tmp_path / "run")), progress=False)
    record = result.metrics["speed"]
    assert record["fallback"] == ("the training-mode check found a training step fails with the levers "
                                  "(RuntimeError: Output 0 of SplitWithSizes is a view and is being modified inplace.)")
    assert record["batches"] == "padded" and not any(lever["used"] for lever in record["levers"].values())
    assert len(result.history["steps"]) == 3
    assert "fell back to plain padded training" in (result.output / "README.md").read_text()


def test_the_check_compares_within_its_tolerance(no_dropout_bert, tmp_path):
    config = build_config(None, _values(no_dropout_bert, tmp_path / "run"))
    tokenizer, model, features = _loaded(no_dropout_bert, config)
    batches = [PadCollator(tokenizer.pad_token_id)(items) for items in check.check_batches(features)]
    assert len(batches) == check.CHECK_BATCHES
    before = torch.get_rng_state()
    reference = check.step_values(model, batches)
    assert torch.equal(torch.get_rng_state(), before), "the check leaves the random state as it found it"
    assert all(p.grad is None for p in model.parameters())
    assert check.compare(reference, check.step_values(model, batches)) is None
    losses, grads = reference
    name = next(iter(grads))
    nudged = {**grads, name: grads[name] * (1 + 10 * check.GRAD_RTOL)}
    assert name in check.compare(reference, (losses, nudged))
    assert "loss" in check.compare(reference, ([losses[0] * 1.01, *losses[1:]], grads))


def test_the_plan_is_decided_once_and_leaves_the_model_as_it_was(no_dropout_bert, tmp_path):
    config = build_config(None, _values(no_dropout_bert, tmp_path / "run"))
    tokenizer, model, features = _loaded(no_dropout_bert, config)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    modules = [type(m) for m in model.modules()]
    plan = speed.plan_training(config, model, features, tokenizer.pad_token_id, device=torch.device("cpu"),
                               bf16=False, processes=1, default_optimizer=ADAMW)
    assert plan.batches == "packed, padding-free" and plan.uses("fuse_qkv") and plan.uses("sparse_embedding")
    assert [type(m) for m in model.modules()] == modules and model.config._attn_implementation == "sdpa"
    with speed.training_levers(plan, model, features, PadCollator(tokenizer.pad_token_id)) as applied:
        assert applied.fallback is None
        assert [type(m) for m in model.modules()] != modules
        assert model.get_input_embeddings().sparse
    assert [type(m) for m in model.modules()] == modules and model.config._attn_implementation == "sdpa"
    assert not model.get_input_embeddings().sparse
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


def test_off_the_cpu_the_plan_takes_transformers_flattening_or_padding(no_dropout_bert, tmp_path):
    """On CUDA (or MPS, XPU) the CPU levers do not apply; NER takes transformers' DataCollatorWithFlattening when
    the model gives padding's logits that way, text classification padded batches. Decided here on the CPU's
    tensors with the device named: the decision and the flattened batches are the same code on a GPU."""
    config = build_config(None, _values(no_dropout_bert, tmp_path / "run"))
    tokenizer, model, features = _loaded(no_dropout_bert, config)
    plan = speed.plan_training(config, model, features, tokenizer.pad_token_id, device=torch.device("cuda"),
                               bf16=True, processes=1, default_optimizer=ADAMW)
    assert plan.device == "cuda" and plan.batches.startswith("flattened") and plan.uses("packing")
    for name in ("fast_dropout", "fuse_qkv", "sparse_embedding"):
        assert plan.levers[name].note == "written for CPUs; this run uses cuda"
    items = [feature.model_inputs() for feature in features[:8]]
    model.eval()
    with torch.no_grad():
        padded = model(**PadCollator(tokenizer.pad_token_id)(items)).loss
        flattened = model(**plan.train_collator(items, return_tensors="pt")).loss
    assert flattened.item() == pytest.approx(padded.item(), rel=1e-5)
    classify = build_config(None, {**_values(no_dropout_bert, tmp_path / "cls"), "task": "text-classification"})
    plan = speed.plan_training(classify, model, features, tokenizer.pad_token_id, device=torch.device("cuda"),
                               bf16=True, processes=1, default_optimizer=ADAMW)
    assert plan.batches == "padded" and not plan.uses("packing") and plan.train_collator is None


def test_a_checkpoint_with_another_optimizer_layout_is_refused(no_dropout_bert, tmp_path):
    config = build_config(None, _values(no_dropout_bert, tmp_path / "run"))
    tokenizer, model, features = _loaded(no_dropout_bert, config)
    sparse = speed.plan_training(config, model, features, tokenizer.pad_token_id, device=torch.device("cpu"),
                                 bf16=False, processes=1, default_optimizer=ADAMW)
    dense = speed.plan_training(config, model, features, tokenizer.pad_token_id, device=torch.device("cuda"),
                                bf16=False, processes=1, default_optimizer=ADAMW)
    keeper = CheckpointKeeper(tmp_path, RunRecorder(config.task, "f1", None, None))
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    keeper.check_plan(sparse, None)
    (checkpoint / STATE_FILE).write_text(json.dumps({"speed": keeper._plan}))
    keeper.check_plan(sparse, checkpoint)  # the same layout resumes
    with pytest.raises(ConfigError) as error:
        keeper.check_plan(dense, checkpoint)
    assert error.value.code == "E224" and "sparse embedding rows" in error.value.message
    assert "--overwrite" in error.value.fix
