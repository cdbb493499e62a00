"""bf16 prediction's Linears through oneDNN with the feed-forward GELU fused (`onednn_linear.py`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLE_TEXTS, saved_classifier
from torch import nn

from tunecard.inference.predictor import Predictor
from tunecard.speed import onednn_linear
from tunecard.speed.onednn_linear import OneDnnLinear, restore_linears, use_onednn_linears


def _onednn_runs_bf16() -> bool:
    """Whether this torch build and CPU run oneDNN's bf16 Linear (CPUs without AVX-512 may refuse it)."""
    if onednn_linear._linear_pointwise() is None:
        return False
    try:
        x = torch.ones(2, 8, dtype=torch.bfloat16)
        torch.ops.mkldnn._linear_pointwise(x, torch.ones(4, 8, dtype=torch.bfloat16), None, "none", [], "")
    except RuntimeError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _onednn_runs_bf16(), reason="no oneDNN bf16 Linear on this machine")


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_cased, tmp_path_factory):
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("ner"), True, ["O", "B-PER", "I-PER", "B-LOC"])


def _bf16_model(folder):
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(folder).eval().to(torch.bfloat16)


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("activation, approximate", [("gelu", "none"), ("gelu", "tanh"), ("none", "")])
def test_a_fused_linear_is_closer_to_fp32_than_bf16_in_two_steps(activation, approximate):
    torch.manual_seed(0)
    linear = nn.Linear(64, 256).to(torch.bfloat16)
    x = torch.randn(3, 40, 64).to(torch.bfloat16)
    exact = F.linear(x.double(), linear.weight.double(), linear.bias.double())
    two_steps = linear(x)
    if activation == "gelu":
        exact, two_steps = F.gelu(exact, approximate=approximate), F.gelu(two_steps, approximate=approximate)
    fused = OneDnnLinear(linear, activation, approximate)(x)
    assert fused.shape == two_steps.shape and fused.dtype == torch.bfloat16
    assert (fused.double() - exact).abs().max() <= (two_steps.double() - exact).abs().max()


def test_a_bert_gets_every_linear_swapped_and_restored(ner_folder):
    model = _bf16_model(ner_folder)
    ids = torch.randint(1000, 2000, (2, 12))
    plain, names = _logits(model, ids), set(model.state_dict())
    linears = sum(type(m) is nn.Linear for m in model.modules())
    assert use_onednn_linears(model) == linears
    intermediate = model.bert.encoder.layer[0].intermediate
    assert (intermediate.dense.activation, intermediate.dense.algorithm) == ("gelu", "none")
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert set(model.state_dict()) == names  # the parameters keep their names
    fused = _logits(model, ids)
    # bf16 rounding at other places (a few units in the last place of the largest logit), not another function
    assert 0 < (fused - plain).abs().max() <= plain.abs().max() / 64
    restore_linears(model)
    assert torch.equal(_logits(model, ids), plain)


def test_distilbert_feed_forward_is_fused(tiny_bert_cased):
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=2000, dim=32, hidden_dim=64, n_layers=1, n_heads=2, num_labels=3)
    model = DistilBertForTokenClassification(config).eval().to(torch.bfloat16)
    ids = torch.randint(0, 2000, (2, 9))
    plain = _logits(model, ids)
    use_onednn_linears(model)
    ffn = model.distilbert.transformer.layer[0].ffn
    assert isinstance(ffn.lin1, OneDnnLinear) and ffn.lin1.activation == "gelu"
    assert (_logits(model, ids) - plain).abs().max() <= plain.abs().max() / 64


def test_fp32_weights_are_left_alone(ner_folder):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(ner_folder)
    assert use_onednn_linears(model) == 0


def test_the_predictor_uses_them_in_bf16_and_finds_the_same_entities(ner_folder):
    bf16 = Predictor(ner_folder, precision="bf16", recheck_margin=1e9)
    fp32 = Predictor(ner_folder, precision="fp32")
    assert bf16.speed_plan.uses("onednn_linears") and not fp32.speed_plan.uses("onednn_linears")
    assert bf16.predict(SAMPLE_TEXTS) == fp32.predict(SAMPLE_TEXTS)  # every text rechecked: fp32's answers


def test_a_fusion_that_changes_the_logits_is_undone(ner_folder, monkeypatch):
    monkeypatch.setattr(OneDnnLinear, "forward", lambda self, x: F.linear(x, self.weight, self.bias) * 3)
    predictor = Predictor(ner_folder, precision="bf16", recheck_margin=0)
    assert not predictor.speed_plan.uses("onednn_linears")
    assert not any(isinstance(m, OneDnnLinear) for m in predictor.model.modules())
