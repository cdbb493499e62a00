"""Evaluation and prediction on 100k examples run in bounded memory.

Each measurement runs in a fresh process (an allocator that already holds freed memory would hide growth):
it builds its inputs, notes its resident memory, resets the kernel's peak counter (``/proc/self/clear_refs``),
runs ``evaluate_folder`` or ``Predictor.predict`` and reads the peak back. Inputs (a CoNLL file on disk, which
the evaluation reads itself; the texts, for predict) exist before the baseline; what the call itself needs on top of them must not grow with the number of
examples. Keeping features for the whole input would cost about 2 KB per example, keeping logits
16 x 41 x 4 bytes; what may grow is the output (an empty entity list per text) and a few ints per example.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "Peter", "Blackburn"]
TAGS = ["B-T0", "O", "B-T1", "O", "O", "O", "B-T2", "O", "B-T3", "I-T3"]
LABELS = ["O"] + [f"{prefix}-T{i}" for i in range(20) for prefix in "BI"]  # 41 labels: logits would be large
# Growth allowed per example between the 10k and the 100k run, in bytes: an entity list, a result slot and the
# length-sorted order. Measured 41-162 B predicting over repeated runs of the same code (heap noise around the
# result list's own 64 B; 150 failed once), ~50 B evaluating; keeping features costs ~2000 B, logits more.
BYTES_PER_EXAMPLE = 400


def build_ner_folder(folder: Path, tokenizer_folder: Path, o_bias: float = 0.0) -> Path:
    """A token classifier small enough for 100k examples on a CPU, saved as a run folder would be."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=len(LABELS),
                        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.bias[0] = o_bias  # a large bias: every word "O", so predictions are empty lists
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_conll(path: Path, n: int) -> None:
    """n five-word sentences in CoNLL-2003's four columns."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.writelines(f"{word} NN B-NP {tag}\n" for word, tag in zip(WORDS[i % 5:i % 5 + 5],
                                                                               TAGS[i % 5:i % 5 + 5]))
            handle.write("\n")


def _kernel_bytes(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def measure(mode: str, folder: str, n: int) -> dict:
    """Run in a child process: peak memory above the baseline while evaluating or predicting n examples."""
    import torch

    from tunecard.inference.predictor import Predictor, evaluate_folder

    torch.set_num_threads(1)
    if mode == "evaluate":  # the input is a file on disk: the reader counts
        data = Path(folder) / f"test-{n}.conll"
        write_conll(data, n)
        baseline = _start()
        result = evaluate_folder(folder, data, batch_size=256)
        assert result["tokens"] == 5 * n and result["sentences"] == n
    else:
        predictor = Predictor(folder, batch_size=256)
        texts = [" ".join(WORDS[i % 5:i % 5 + 5]) for i in range(n)]
        baseline = _start()
        result = predictor.predict(texts)
        assert len(result) == n and not any(result)
    return {"growth": _kernel_bytes("VmHWM") - baseline}


def _start() -> int:
    baseline = _kernel_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident size to the current one
    return baseline


def _run_child(mode: str, folder: Path, n: int) -> int:
    done = subprocess.run([sys.executable, __file__, mode, str(folder), str(n)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["growth"]


@pytest.fixture(scope="module")
def ner_folder(tmp_path_factory, tiny_bert_cased) -> Path:
    return build_ner_folder(tmp_path_factory.mktemp("tiny-ner-41"), tiny_bert_cased, o_bias=50.0)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak")
@pytest.mark.parametrize("mode", ["evaluate", "predict"])
def test_memory_does_not_grow_with_the_number_of_examples(ner_folder, mode):
    small, large = _run_child(mode, ner_folder, 10_000), _run_child(mode, ner_folder, 100_000)
    per_example = (large - small) / 90_000
    assert per_example < BYTES_PER_EXAMPLE, (
        f"{mode}: {small / 1e6:.1f} MB above the inputs for 10k examples, {large / 1e6:.1f} MB for 100k "
        f"({per_example:.0f} bytes per extra example)")


def test_chunked_evaluation_equals_one_pass(tiny_bert_short):
    """Evaluation in chunks (as evaluate_folder does it) scores exactly what one pass over all features does,
    long windowed sentences included."""
    from transformers import AutoTokenizer

    from tunecard.data.example import TokenExample
    from tunecard.encoding.batching import PadCollator
    from tunecard.encoding.encoder import Encoder
    from tunecard.inference.predictor import Predictor
    from tunecard.training.evaluate import Evaluation, evaluate_features

    folder = build_ner_folder(tiny_bert_short.parent / "ner-short", tiny_bert_short)
    predictor = Predictor(folder, batch_size=8)
    examples = [TokenExample(tokens=(WORDS * (1 + i % 9))[i % 4:], tags=(TAGS * (1 + i % 9))[i % 4:], line=i + 1)
                for i in range(40)]
    examples.append(TokenExample(tokens=[], tags=[], line=41))
    encoder = Encoder(AutoTokenizer.from_pretrained(folder), predictor.encoder.label2id, max_length=32)
    collator = PadCollator(0)
    features = encoder.encode_tokens(examples)
    assert len(features) > len(examples)  # some sentences are windowed
    whole = evaluate_features(predictor.model, features, examples, task=predictor.task, id2label=predictor.id2label,
                              collator=collator, batch_size=8)
    chunked = Evaluation(predictor.task, predictor.id2label)
    for start in range(0, len(examples), 7):
        chunk = examples[start:start + 7]
        chunked.add(predictor.model, encoder.encode_tokens(chunk), chunk, collator=collator, batch_size=5)
    result = chunked.result()
    assert result["tokens"] == whole["tokens"] == sum(len(ex.tokens) for ex in examples)
    assert result["sentences"] == whole["sentences"] == len(examples)
    for key in ("f1", "accuracy", "gold_entities", "predicted_entities", "correct_entities", "per_label"):
        assert result[key] == whole[key], key
    assert result["loss"] == pytest.approx(whole["loss"], rel=1e-5)


if __name__ == "__main__":  # the child process of the memory test
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))


def test_a_finished_run_leaves_no_trainer_or_model_behind(tiny_bert_cased, tmp_path):
    """The Trainer and the model sit in reference cycles: train() collects them before it returns, so the next
    thing the process does (a search's next trial, a prediction) does not stack on a dead run's memory."""
    import gc
    import weakref

    from conftest import quick_ner_values

    from tunecard.config import build_config
    from tunecard.pipeline import train
    from tunecard.training.trainer import TunecardTrainer

    alive = []
    original_init = TunecardTrainer.__init__

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        alive.extend([weakref.ref(self), weakref.ref(self.model)])

    values = quick_ner_values(tiny_bert_cased, tmp_path)
    gc.disable()  # only train() may collect
    try:
        with mock.patch.object(TunecardTrainer, "__init__", remember):
            train(build_config(None, values), progress=False)
        trainer, model = alive
        assert trainer() is None, "the Trainer is still alive after train() returned"
        assert model() is None, "the trained model is still alive after train() returned"
    finally:
        gc.enable()
