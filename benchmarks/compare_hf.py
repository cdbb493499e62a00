"""Side by side on one machine: the plain Hugging Face recipe vs `tunecard train`, and pipeline vs predict.

    .venv/bin/python benchmarks/compare_hf.py [--task ner|sst2] [--train-sentences 3000] [--eval-sentences 1000]
                                              [--rounds 1]
    .venv/bin/python benchmarks/compare_hf.py --inference-only RUN_DIR   # predict variants only (torch, ONNX, int8)
    .venv/bin/python benchmarks/compare_hf.py --device cuda [--speed off]   # on a GPU (benchmarks/gpu_check.sh)

(ref) follows examples/pytorch/token-classification/run_ner.py: Trainer, fp32, DataCollatorForTokenClassification
(dynamic padding), random sampler, first-subword labels, seqeval metrics, lr 5e-5, batch 16, seed 42, 1 epoch.
(ours) is `tunecard.pipeline` with its defaults and the same hyperparameters (`--speed off`: without the speed layer).
`--device cuda`: both sides on the GPU, the recipe in bf16 (the plain GPU recipe) and tunecard at precision auto. Each side runs in its own process so
peak RSS is its own. Inference: transformers.pipeline(aggregation_strategy="first") vs tunecard predict on the
validation sentences (joined with spaces), entities compared as (label, start, end).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(task: str, n_train: int, n_eval: int):
    from tunecard.data import read_corpus

    if task == "ner":
        train = read_corpus(DATA / "conll2003/train.txt").examples[:n_train]
        dev = read_corpus(DATA / "conll2003/valid.txt").examples[:n_eval]
    else:
        train = read_corpus(DATA / "sst2/train.txt").examples[:n_train]
        dev = read_corpus(DATA / "sst2/dev.txt").examples[:n_eval]
    return train, dev


def reference(task: str, n_train: int, n_eval: int, device: str, queue) -> None:
    """The plain recipe, written as the transformers example scripts write it."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from tunecard.config import default_model

    model_path = default_model()
    train, dev = _data(task, n_train, n_eval)
    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if task == "ner":
        labels = sorted({t for ex in train for t in ex.tags})
        label2id = {l: i for i, l in enumerate(labels)}

        def encode(examples):
            enc = tokenizer(examples["tokens"], truncation=True, is_split_into_words=True)
            all_labels = []
            for i, tags in enumerate(examples["tags"]):
                previous, row = None, []
                for w in enc.word_ids(i):
                    row.append(-100 if w is None or w == previous else label2id[tags[w]])
                    previous = w
                all_labels.append(row)
            enc["labels"] = all_labels
            return enc

        to_ds = lambda exs: Dataset.from_dict({"tokens": [e.tokens for e in exs], "tags": [e.tags for e in exs]})
        model = AutoModelForTokenClassification.from_pretrained(
            model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
        collator = DataCollatorForTokenClassification(tokenizer)
    else:
        labels = sorted({e.label for e in train})
        label2id = {l: i for i, l in enumerate(labels)}

        def encode(examples):
            enc = tokenizer(examples["text"], truncation=True)
            enc["labels"] = [label2id[l] for l in examples["label"]]
            return enc

        to_ds = lambda exs: Dataset.from_dict({"text": [e.text for e in exs], "label": [e.label for e in exs]})
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
        collator = DataCollatorWithPadding(tokenizer)
    train_ds = to_ds(train).map(encode, batched=True, remove_columns=["tokens", "tags"] if task == "ner" else ["text", "label"])
    dev_ds = to_ds(dev).map(encode, batched=True, remove_columns=["tokens", "tags"] if task == "ner" else ["text", "label"])

    def compute_metrics(prediction):
        predictions = np.argmax(prediction.predictions, axis=-1)
        if task != "ner":
            return {"accuracy": float((predictions == prediction.label_ids).mean())}
        from seqeval.metrics import f1_score

        gold, pred = [], []
        for p_row, l_row in zip(predictions, prediction.label_ids):
            gold.append([labels[l] for p, l in zip(p_row, l_row) if l != -100])
            pred.append([labels[p] for p, l in zip(p_row, l_row) if l != -100])
        return {"f1": f1_score(gold, pred)}

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, learning_rate=5e-5, per_device_train_batch_size=16,
                                 per_device_eval_batch_size=16, num_train_epochs=1, seed=42, report_to="none",
                                 save_strategy="no", eval_strategy="no", disable_tqdm=True,
                                 use_cpu=device == "cpu", bf16=device != "cpu", logging_strategy="no")
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
                          data_collator=collator, processing_class=tokenizer, compute_metrics=compute_metrics)
        started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        metrics = trainer.evaluate()
        eval_seconds = time.perf_counter() - started
    n_tokens = sum(len(e.tokens) for e in train) if task == "ner" else sum(len(e.text.split()) for e in train)
    queue.put({"side": "ref", "train_samples_per_s": len(train) / train_seconds,
               "train_words_per_s": n_tokens / train_seconds, "eval_sentences_per_s": len(dev) / eval_seconds,
               "score": metrics.get("eval_f1", metrics.get("eval_accuracy")), "peak_rss_mb": _peak_rss_mb()})


def ours(task: str, n_train: int, n_eval: int, run_dir: str, speed: str, queue) -> None:
    import transformers

    from tunecard.config import build_config
    from tunecard.inference.predictor import Predictor
    from tunecard.pipeline import train as run
    from tunecard.training.evaluate import evaluate_features

    transformers.logging.set_verbosity_error()
    train, dev = _data(task, n_train, n_eval)
    files = {"ner": ("conll2003/train.txt", "conll2003/valid.txt"), "sst2": ("sst2/train.txt", "sst2/dev.txt")}[task]
    config = build_config(None, dict(
        task="ner" if task == "ner" else "text-classification", train=str(DATA / files[0]),
        validation=str(DATA / files[1]), output=run_dir, num_epochs=1, learning_rate=5e-5,
        train_batch_size=16, seed=42, max_train_examples=n_train, max_eval_examples=n_eval, speed=speed))
    result = run(config, progress=False)
    predictor = Predictor(result.output)
    features = (predictor.encoder.encode_tokens(dev) if task == "ner" else predictor.encoder.encode_texts(dev))
    started = time.perf_counter()
    evaluate_features(predictor.model, features, dev, task=predictor.task, id2label=predictor.id2label,
                      collator=predictor.collator, batch_size=64, packed=predictor.packed,  # as `tunecard evaluate`:
                      recheck_model=predictor.fp32_model, recheck_margin=predictor.recheck_margin)
    eval_seconds = time.perf_counter() - started
    training = result.metrics["training"]
    n_tokens = sum(len(e.tokens) for e in train) if task == "ner" else sum(len(e.text.split()) for e in train)
    seconds = training["runtime_seconds"] - training["evaluation_seconds"]  # ref trains without evaluating
    queue.put({"side": "ours", "speed": result.metrics["speed"], "train_samples_per_s": len(train) / seconds,
               "train_words_per_s": n_tokens / seconds,
               "eval_sentences_per_s": len(dev) / eval_seconds,
               "score": result.metrics["validation"]["f1" if task == "ner" else "accuracy"],
               "peak_rss_mb": _peak_rss_mb()})


# tunecard predict variants: torch fp32, torch at its defaults (bf16 where the CPU has it, close calls predicted
# again in fp32), the same without rechecking, and (with onnxruntime installed) the ONNX export in fp32 and int8,
# each also scored (F1) on the same validation sentences from its own predictions.
PREDICT_VARIANTS = {"fp32": dict(precision="fp32"), "auto": dict(precision="auto"),
                    "auto, no recheck": dict(precision="auto", recheck_margin=0.0),
                    "onnx": dict(backend="onnx"), "onnx-int8": dict(backend="onnx", quantized=True)}


def inference(run_dir: str, n_eval: int, rounds: int, device: str, queue) -> None:
    """pipeline(aggregation_strategy="first") vs tunecard predict on the same texts (PREDICT_VARIANTS), `rounds`
    times in turn (this shared machine's speed drifts within minutes): medians, and each round's ratios. The
    ratios are against the pipeline given batches of 16, a stronger baseline than its default (one text at a
    time, as the issue calls it), which is timed too."""
    import importlib.util

    import transformers
    from transformers import pipeline

    from tunecard.inference.predictor import Predictor
    from tunecard.metrics import score_entities

    transformers.logging.set_verbosity_error()
    dev = _data("ner", 1, n_eval)[1]
    texts = [" ".join(ex.tokens) for ex in dev]
    variants = dict(PREDICT_VARIANTS)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
        from tunecard.export.onnx import export_onnx

        export_onnx(run_dir, quantize="int8")
    else:
        variants = {k: v for k, v in variants.items() if "backend" not in v}
    ner = pipeline("token-classification", model=run_dir, aggregation_strategy="first", device=device)
    if device != "cpu":  # ONNX Runtime runs on the CPU here
        variants = {k: v for k, v in variants.items() if "backend" not in v}
    predictors = {name: Predictor(run_dir, device=device, **options) for name, options in variants.items()}
    runs = {"pipeline": lambda batch: ner(batch, batch_size=16), "pipeline, default batch size": ner,
            **{name: predictor.predict for name, predictor in predictors.items()}}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for round_ in range(rounds):
        for name in (list(runs) if round_ % 2 == 0 else list(reversed(runs))):
            started = time.perf_counter()
            outputs[name] = runs[name](texts)
            seconds[name].append(time.perf_counter() - started)
    rate = {name: len(texts) / statistics.median(values) for name, values in seconds.items()}
    found = {"pipeline_sentences_per_s": rate["pipeline"], "sentences": len(texts), "rounds": rounds,
             "pipeline_default_batch_sentences_per_s": rate["pipeline, default batch size"],
             "pipeline_default_batch_identical": sum(
                 _spans(a) == _spans(b) for a, b in zip(outputs["pipeline"], outputs["pipeline, default batch size"]))}
    for name, predictor in predictors.items():
        same = sum(_spans(ref) == _spans(mine) for ref, mine in zip(outputs["pipeline"], outputs[name]))
        rechecked = predictor.rechecked  # by the last timed predict: the same sentences
        # Scored from predict's own tags on the gold words, so rechecked close calls count as predicted.
        tags = [[tag for tag, _ in words] for words in predictor.predict_words([ex.tokens for ex in dev])]
        f1 = score_entities([ex.tags for ex in dev], tags)["f1"]
        found[name] = {"sentences_per_s": rate[name], "identical_sentences": same, "f1": f1,
                       "rechecked": rechecked,
                       "round_ratios": [p / o for p, o in zip(seconds["pipeline"], seconds[name])]}
    queue.put(found)


def _spans(entities: list[dict]) -> set[tuple[str, int, int]]:
    """(label, start, end) of each entity, from the pipeline's dicts ("entity_group") or predict's ("label")."""
    return {(e["entity_group"] if "entity_group" in e else e["label"], e["start"], e["end"]) for e in entities}


def _run(target, *args) -> dict:
    import queue as queues

    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not process.is_alive():  # it failed (its traceback is above): do not wait for it forever
                sys.exit(f"{target.__name__} exited with code {process.exitcode} before reporting")
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["ner", "sst2"], default="ner")
    parser.add_argument("--train-sentences", type=int, default=3000)
    parser.add_argument("--eval-sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1,
                        help="Run both sides this many times, taking turns, and report medians: on a shared machine "
                             "one run each can be 20%% off either way.")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: both sides on the GPU (the recipe in bf16).")
    parser.add_argument("--speed", choices=["auto", "off"], default="auto", help="tunecard's speed layer.")
    parser.add_argument("--inference-only", metavar="RUN_DIR",
                        help="Skip training: only the inference comparison, on this trained CoNLL-2003 NER folder.")
    args = parser.parse_args()
    if args.inference_only:
        _print_inference(_run(inference, args.inference_only, args.eval_sentences, args.rounds, args.device))
        return
    scratch = tempfile.mkdtemp(prefix="tunecard-bench-")
    sides: dict[str, list[dict]] = {"ref": [], "ours": []}
    for round_ in range(args.rounds):
        order = ["ref", "ours"] if round_ % 2 == 0 else ["ours", "ref"]
        for side in order:
            if side == "ref":
                sides[side].append(_run(reference, args.task, args.train_sentences, args.eval_sentences,
                                        args.device))
            else:
                run_dir = str(Path(scratch) / f"run{round_}")  # the last round's run is the one predicted with
                sides[side].append(_run(ours, args.task, args.train_sentences, args.eval_sentences, run_dir,
                                        args.speed))
    rows = [{"side": side, **{key: statistics.median(r[key] for r in runs) for key in runs[0]
                              if key not in ("side", "speed")}}
            for side, runs in sides.items()]
    keys = ["train_samples_per_s", "train_words_per_s", "eval_sentences_per_s", "peak_rss_mb", "score"]
    print(f"{'median of ' + str(args.rounds) + ' round(s)':24}" + "".join(f"{r['side']:>12}" for r in rows)
          + f"{'ours/ref':>12}")
    for key in keys:
        ratio = rows[1][key] / rows[0][key] if rows[0][key] else float("nan")
        print(f"{key:24}" + "".join(f"{r[key]:12.3f}" for r in rows) + f"{ratio:12.2f}")
    if args.rounds > 1:
        for key in keys[:4]:
            ratios = [o[key] / r[key] for r, o in zip(sides["ref"], sides["ours"])]
            print(f"{key} ratio per round: " + " ".join(f"{x:.2f}" for x in ratios))
    print(json.dumps(sides))
    if args.task == "ner":
        _print_inference(_run(inference, run_dir, args.eval_sentences, args.rounds, args.device))
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def _print_inference(found: dict) -> None:
    print(f"inference on {found['sentences']} sentences (median of {found['rounds']} round(s)): pipeline "
          f"{found['pipeline_sentences_per_s']:.1f}/s with batch_size=16 (the ratios' baseline)")
    if "pipeline_default_batch_sentences_per_s" in found:
        default = found["pipeline_default_batch_sentences_per_s"]
        auto = found.get("auto", {}).get("sentences_per_s", float("nan"))
        print(f"  pipeline at its default batch size (one text at a time): {default:.1f}/s, the same entities as "
              f"batched in {found['pipeline_default_batch_identical']}/{found['sentences']} sentences; "
              f"tunecard predict (auto) {auto / default:.2f}x that")
    for name in PREDICT_VARIANTS:
        if name in found:
            r = found[name]
            print(f"  tunecard predict ({name}): {r['sentences_per_s']:.1f}/s "
                  f"({r['sentences_per_s'] / found['pipeline_sentences_per_s']:.2f}x; per round "
                  f"{' '.join(f'{x:.2f}' for x in r['round_ratios'])}), identical entities in "
                  f"{r['identical_sentences']}/{found['sentences']} sentences, F1 {r['f1']:.4f}"
                  + (f", {r['rechecked']} rechecked in fp32" if r.get("rechecked") else ""))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
