"""The `tunecard` command line: parse arguments, call the library, print. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tunecard.data.example import ReadOptions
from tunecard.errors import TunecardError

app = typer.Typer(
    help="Fine-tune BERT-family encoders for NER and text classification (single- or multi-label), and write a model "
    "card that tells the truth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect labelled data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)
out = Console()

SAMPLES = Path(__file__).parent / "samples"
PREDICT_CHUNK = 1024  # most lines predicted and printed at a time by `tunecard predict`
BACKEND_HELP = "torch, or onnx: the folder's ONNX export (`tunecard export DIR`) run by ONNX Runtime."
ONNX_FILE_HELP = "With --backend onnx: the .onnx file to run (default DIR/onnx/model.onnx)."
QUANTIZED_HELP = "With --backend onnx: run the int8 export (model.int8.onnx from `export --quantize int8`)."
PRECISION_HELP = ("auto (bf16 where the CPU or GPU has it), bf16 (the weights cast once; close calls predicted again "
                  "in fp32, see --recheck-margin) or fp32.")
RECHECK_HELP = ("With bf16 weights: predict a text again in fp32 when its two best logits (for some word, NER) are "
                "less than this far apart, so close calls get fp32's answer (evaluate scores those; NER predict "
                "skips ties that cannot change the entities). Default 0.15 (evaluate.RECHECK_MARGIN); 0: off, "
                "bf16's answers as they come (docs/performance.md, Close calls).")
DECODING_HELP = ("NER: argmax (each word's most likely tag, as transformers.pipeline) or constrained (the most "
                 "likely valid IOB2 tag sequence). Default: as the run was trained (its decoding key).")
SPEED_HELP = ("auto: the speed layer's prediction levers (NER texts packed in shared rows, oneDNN's fused bf16 "
              "Linears on CPU), each used only if a check at load finds the model's logits the same that way; "
              "off: plain padded passes.")
HEADER_HELP = "CSV/TSV: the first row is a header (--header) or an example (--no-header); default: detected."
OVERLAP_HELP = ("Span JSONL with overlapping or nested spans: error (the default), longest or first (keep the longest, "
                "or the first listed, of spans that overlap; the others are dropped and counted).")


def _print_version(value: bool) -> None:
    if value:
        from tunecard import __version__

        typer.echo(f"tunecard {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print tunecard's version and exit."),
):
    """Fine-tune BERT-family encoders for NER and text classification (single- or multi-label), and write a model card
    that tells the truth."""


@app.command()
def train(
    config_file: Optional[Path] = typer.Argument(None, help="YAML config (a run's train_config.yaml reproduces it)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set learning_rate=3e-5 (repeatable)."),
    task: Optional[str] = typer.Option(None, help="ner (token-classification), text-classification, or multi-label "
                                       "(a set of labels per text; text-classification data with label lists, or "
                                       "--label-separator, is trained as multi-label)."),
    model: Optional[str] = typer.Option(None, help="Hub id or local folder. Default: the embedded all-MiniLM-L6-v2."),
    train_file: Optional[str] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[str] = typer.Option(None, help="Validation data file (selects the best epoch)."),
    test: Optional[str] = typer.Option(None, help="Test data file (scored once, with the best checkpoint)."),
    output: Optional[str] = typer.Option(None, help="Run folder to write."),
    epochs: Optional[float] = typer.Option(None, help="num_epochs (default 3)."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Stop after this many optimizer steps (overrides "
                                            "--epochs; the schedule spans these steps)."),
    learning_rate: Optional[float] = typer.Option(None, help="Peak learning rate (default 5e-5)."),
    batch_size: Optional[int] = typer.Option(None, help="train_batch_size (default 16)."),
    eval_batch_size: Optional[int] = typer.Option(None, help="eval_batch_size (default 64)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 42)."),
    max_length: Optional[int] = typer.Option(None, help="Max subwords per input; longer NER sentences are windowed."),
    precision: Optional[str] = typer.Option(None, help="auto (bf16 where the hardware has it), bf16 or fp32."),
    format: Optional[str] = typer.Option(None, help="Input format (default: detected)."),
    scheme: Optional[str] = typer.Option(None, help="Tag scheme: IOB1, IOB2, IOBES, BMES, BILOU (default: detected)."),
    encoding: Optional[str] = typer.Option(None, help="Input file encoding (default utf-8), or per split: "
                                           "train=latin-1,validation=utf-8."),
    text_column: Optional[str] = typer.Option(None, help="Classification: the text column (a header name or a "
                                              "0-based index; JSONL: the key)."),
    label_column: Optional[str] = typer.Option(None, help="Classification: the label column (a header name or a "
                                               "0-based index; JSONL: the key)."),
    tag_column: Optional[int] = typer.Option(None, help="CoNLL: 0-based column holding the tag "
                                             "(default: the last)."),
    label_separator: Optional[str] = typer.Option(None, help="CSV/TSV/label-text: the label cell lists several "
                                                  "labels joined by this, e.g. '|' (multi-label)."),
    class_weights: Optional[str] = typer.Option(None, help="none (default) or balanced: weight rare classes (NER "
                                                "tags; multi-label: each label's positives) in the loss; a weight "
                                                "per label with --set 'class_weights={rare: 5}'."),
    speed: Optional[str] = typer.Option(None, help="auto (the speed layer where it applies and its checks pass; "
                                        "the default) or off (plain transformers training)."),
    overwrite: bool = typer.Option(False, help="Replace a non-empty output folder."),
    resume: bool = typer.Option(False, help="Continue a killed run from its last checkpoint (error if none)."),
    quiet: bool = typer.Option(False, help="No progress bar or per-epoch rows."),
    trust_pickle: bool = typer.Option(False, help="Allow a base model with pickle weights only (runs code)."),
):
    """Fine-tune a model, evaluate every epoch, keep the best checkpoint and write its card."""
    from tunecard.config import build_config
    from tunecard.pipeline import train as run_training

    flags = dict(task=task, model=model, train=train_file, validation=validation, test=test, output=output,
                 num_epochs=epochs, learning_rate=learning_rate, train_batch_size=batch_size,
                 eval_batch_size=eval_batch_size, seed=seed, max_length=max_length, precision=precision,
                 format=format, scheme=scheme, encoding=encoding, speed=speed, max_steps=max_steps,
                 text_column=text_column, label_column=label_column, tag_column=tag_column,
                 label_separator=label_separator, class_weights=class_weights)
    config = build_config(config_file, flags, set_)
    result = run_training(config, overwrite=overwrite, resume=resume, console=None if quiet else console,
                          progress=not quiet, trust_pickle=trust_pickle)
    if result.main_process:  # torchrun / accelerate launch: one summary, from rank 0
        _print_summary(result)


def _print_summary(result) -> None:
    validation = result.metrics.get("validation")
    best = result.history.get("best")
    if validation:
        keys = _summary_keys(result.metrics.get("task"))
        numbers = ", ".join(f"{k.replace('_', ' ')} {validation[k]:.4f}" for k in keys if validation.get(k) is not None)
        if best:
            console.print(f"[bold]best checkpoint[/]: epoch {best['epoch']} (step {best['step']}): {numbers}")
        else:  # no evaluation gave a comparable value (e.g. every validation loss was NaN)
            console.print(f"[bold yellow]no best checkpoint[/] (no evaluation gave a usable value): the last "
                          f"weights were saved: {numbers}")
    console.print(f"[bold green]wrote[/] {result.output} (model, card README.md, history.json, metrics.json)")


def _summary_keys(task: str | None) -> tuple[str, ...]:
    from tunecard.config import MULTI_LABEL, TASK_METRICS

    if task == MULTI_LABEL:  # precision, recall, f1: micro averages
        return TASK_METRICS[MULTI_LABEL]
    return ("precision", "recall", "f1", "accuracy")


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A trained run folder."),
    text: list[str] = typer.Option([], "--text", help="Text to label (repeatable)."),
    file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="A text file, one text per line."),
    encoding: Optional[str] = typer.Option(None, help="Encoding of --file or stdin (default utf-8), e.g. latin-1."),
    batch_size: int = typer.Option(64, help="Texts per forward pass (NER: 64 tokens each, packed)."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    speed: str = typer.Option("auto", "--speed", help=SPEED_HELP),
    trust_pickle: bool = typer.Option(False, help="Allow pickle weights (runs code: trusted folders only)."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    onnx_file: Optional[Path] = typer.Option(None, help=ONNX_FILE_HELP),
    quantized: bool = typer.Option(False, help=QUANTIZED_HELP),
    recheck_margin: Optional[float] = typer.Option(None, help=RECHECK_HELP),
    decoding: Optional[str] = typer.Option(None, help=DECODING_HELP),
    document: bool = typer.Option(False, "--document", help="NER: read documents, one sentence per line, blank "
                                  "lines between documents (each --text one document); one JSON line per document, "
                                  "offsets into it. A model trained with context: document sees each sentence with "
                                  "its neighbours."),
):
    """Label texts (--text, --file, or stdin lines): one JSON line per text (per document with --document).

    NER gives entities; classification the label, its score and every probability; multi-label every label at or
    above its tuned threshold (config.json) with its score, and every probability.

    Each line is answered as it arrives (output flushed per line): predict can be a worker in a pipeline. With --document, a document is answered when the blank line after it (or the end of the input) arrives.
    """
    from tunecard.data.lines import STDIN, check_encoding, document_groups, line_groups
    from tunecard.inference.predictor import load

    name = str(file) if file is not None else STDIN
    check_encoding(encoding, name)  # before the model loads: a typo costs nothing
    predictor = load(model_dir, batch_size=batch_size, precision=precision, trust_pickle=trust_pickle,
                     backend=backend, onnx_file=onnx_file, quantized=quantized, speed=speed,
                     recheck_margin=recheck_margin, decoding=decoding)
    if document:
        predictor.check_documents()  # before any input is read
    with ExitStack() as stack:
        if text:
            groups = iter([text])
        else:
            stream = stack.enter_context(file.open("rb")) if file is not None else sys.stdin.buffer
            groups = line_groups(stream.read1, name, encoding, max_lines=PREDICT_CHUNK)
            if document:
                groups = document_groups(groups)
        predict = predictor.predict_documents if document else predictor.predict
        _print_predictions(groups, predict, "entities" if predictor.is_ner else "prediction")


def _print_predictions(groups, predict, key: str) -> None:
    """One JSON line per text, each flushed as written, so a reader at the other end of a pipe has its answer."""
    try:
        for group in groups:  # whatever one read gave: a line typed, or up to PREDICT_CHUNK lines of a file
            for source, prediction in zip(group, predict(group)):
                sys.stdout.write(json.dumps({"text": source, key: prediction}, ensure_ascii=False) + "\n")
                sys.stdout.flush()
    except BrokenPipeError:  # `tunecard predict ... | head`: the reader has gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


@app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="A trained run folder."),
    data: str = typer.Option(..., help="Labelled file to score the model on."),
    format: Optional[str] = typer.Option(None, help="Input format (default: detected)."),
    scheme: Optional[str] = typer.Option(None, help="Tag scheme (default: detected)."),
    encoding: Optional[str] = typer.Option(None, help="File encoding (default utf-8)."),
    text_column: Optional[str] = typer.Option(None, help="Classification: text column name or index."),
    label_column: Optional[str] = typer.Option(None, help="Classification: label column name or index."),
    label_separator: Optional[str] = typer.Option(None, help="Multi-label CSV/TSV/label-text: the separator of the "
                                                  "labels in a cell."),
    tag_column: Optional[int] = typer.Option(None, help="CoNLL: 0-based column holding the tag (default: last)."),
    header: Optional[bool] = typer.Option(None, "--header/--no-header", help=HEADER_HELP),
    overlapping_spans: Optional[str] = typer.Option(None, help=OVERLAP_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    speed: str = typer.Option("auto", "--speed", help=SPEED_HELP),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    onnx_file: Optional[Path] = typer.Option(None, help=ONNX_FILE_HELP),
    quantized: bool = typer.Option(False, help=QUANTIZED_HELP),
    recheck_margin: Optional[float] = typer.Option(None, help=RECHECK_HELP),
    decoding: Optional[str] = typer.Option(None, help=DECODING_HELP),
):
    """Score a saved model on any readable labelled file (multi-label: at the thresholds saved with it)."""
    from tunecard.inference.predictor import evaluate_folder

    options = ReadOptions(format=format, scheme=scheme, encoding=encoding, text_column=text_column,
                          label_column=label_column, tag_column=tag_column, header=header,
                          overlapping_spans=overlapping_spans, label_separator=label_separator)
    result = evaluate_folder(model_dir, data, options, precision=precision, backend=backend, onnx_file=onnx_file,
                             quantized=quantized, speed=speed, recheck_margin=recheck_margin, decoding=decoding)
    for warning in result["data"].get("warnings", []):
        console.print(f"[yellow]warning[/] {_escape(warning)}", highlight=False)
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table(title=f"{model_dir} on {data}")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, r in result["per_label"].items():
        table.add_row(label, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["support"]))
    overall = "[bold]micro[/]" if result.get("average") == "micro" else "[bold]overall[/]"
    table.add_row(overall, f"{result['precision']:.4f}", f"{result['recall']:.4f}", f"{result['f1']:.4f}", "")
    out.print(table)
    if "hamming_loss" in result:  # multi-label
        out.print(f"loss {result['loss']:.4f}  macro F1 {result['macro_f1']:.4f}  samples F1 "
                  f"{result['samples_f1']:.4f}  subset accuracy {result['subset_accuracy']:.4f}  Hamming loss "
                  f"{result['hamming_loss']:.4f}")
        return
    out.print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}")


@app.command()
def export(
    model_dir: Path = typer.Argument(..., help="A trained run folder."),
    onnx: bool = typer.Option(True, "--onnx", help="Export to ONNX (the one format for now)."),
    quantize: Optional[str] = typer.Option(None, help="int8: also write model.int8.onnx (dynamic quantization)."),
    output: Optional[Path] = typer.Option(None, help="The .onnx file to write (default DIR/onnx/model.onnx)."),
    opset: int = typer.Option(18, help="ONNX opset (17 or later)."),
    trust_pickle: bool = typer.Option(False, help="Allow pickle weights (runs code: trusted folders only)."),
):
    """Export a trained folder to ONNX, checked against torch; run it with `predict --backend onnx`."""
    from tunecard.export.onnx import export_onnx

    export_onnx(model_dir, output=output, quantize=quantize, opset=opset, trust_pickle=trust_pickle, console=console)


@app.command()
def serve(
    model_dir: Path = typer.Argument(..., help="A trained run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port (0: a free one; the address is printed once the model is loaded)."),
    max_batch_size: int = typer.Option(64, help="Most texts of concurrent requests predicted together."),
    max_wait_ms: float = typer.Option(5.0, help="How long a request waits for others to join its batch (ms)."),
    max_text_length: int = typer.Option(10_000, help="Characters per text; longer: 413 (E503)."),
    max_texts: int = typer.Option(256, help="Texts per request; more: 413 (E504)."),
    graceful_timeout: float = typer.Option(30.0, help="Seconds requests in flight get to finish after SIGTERM."),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    recheck_margin: Optional[float] = typer.Option(None, help=RECHECK_HELP),
    speed: str = typer.Option("auto", "--speed", help=SPEED_HELP),
    trust_pickle: bool = typer.Option(False, help="Allow pickle weights (runs code: trusted folders only)."),
    log_level: str = typer.Option("warning", help="uvicorn's log level (info: one line per request)."),
):
    """Serve a trained folder over HTTP: POST /predict (what predict prints), GET /health, GET /metadata.

    Concurrent requests are batched through predict's path (bf16 weights, close calls rechecked in fp32).

    SIGTERM or Ctrl-C stops it once the requests in flight are answered. Needs the serve extra (docs/serving.md).
    """
    from tunecard.serve.server import run

    run(model_dir, host=host, port=port, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
        max_text_length=max_text_length, max_texts=max_texts, graceful_timeout=graceful_timeout,
        log_level=log_level, precision=precision, recheck_margin=recheck_margin, speed=speed,
        trust_pickle=trust_pickle)


@data_app.command("stats")
def data_stats(
    paths: list[str] = typer.Argument(..., help="Data files (or save_to_disk folders / hub names)."),
    format: Optional[str] = typer.Option(None, help="Input format (default: detected)."),
    scheme: Optional[str] = typer.Option(None, help="Tag scheme (default: detected)."),
    encoding: Optional[str] = typer.Option(None, help="File encoding (default utf-8)."),
    task: Optional[str] = typer.Option(None, help="ner, text-classification or multi-label (default: detected)."),
    tag_column: Optional[int] = typer.Option(None, help="CoNLL: 0-based column holding the tag (default: last)."),
    text_column: Optional[str] = typer.Option(None, help="Classification: text column name or index."),
    label_column: Optional[str] = typer.Option(None, help="Classification: label column name or index."),
    header: Optional[bool] = typer.Option(None, "--header/--no-header", help=HEADER_HELP),
    overlapping_spans: Optional[str] = typer.Option(None, help=OVERLAP_HELP),
    split_at_spans: bool = typer.Option(False, help="Span JSONL: read as a training file is read (words cut where "
                                        "a span starts or ends inside them), not as an evaluation file."),
    label_separator: Optional[str] = typer.Option(None, help="Multi-label CSV/TSV/label-text: the separator of the "
                                                  "labels in a cell."),
    model: Optional[str] = typer.Option(None, help="Also count subwords with this model's tokenizer."),
    max_length: Optional[int] = typer.Option(None, help="With --model: count examples longer than this."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
):
    """Examples, tokens, labels, lengths and repaired tag sequences per file."""
    from tunecard.config import TASK_ALIASES
    from tunecard.data import read_corpus
    from tunecard.data.stats import corpus_stats, render_stats

    options = ReadOptions(format=format, scheme=scheme, encoding=encoding, tag_column=tag_column,
                          text_column=text_column, label_column=label_column, header=header,
                          overlapping_spans=overlapping_spans, split_at_spans=split_at_spans,
                          label_separator=label_separator)
    tokenizer = None
    if model:
        from tunecard.encoding.models import load_tokenizer

        tokenizer = load_tokenizer(model)
    resolved_task = TASK_ALIASES.get(task.lower(), task) if task else None
    stats = [corpus_stats(read_corpus(p, options, task=resolved_task), tokenizer=tokenizer, max_length=max_length)
             for p in paths]
    if as_json:
        out.print_json(json.dumps(stats if len(stats) > 1 else stats[0], ensure_ascii=False))
        return
    for renderable in render_stats(stats):
        out.print(renderable)


@app.command()
def demo(
    output: str = typer.Option("runs/demo-wnut17", help="Run folder to write."),
    epochs: float = typer.Option(3, help="Epochs."),
):
    """Train the embedded MiniLM on the shipped WNUT-17 sample, write its card and report, and predict a sentence."""
    from tunecard.config import CONFIG_FILE, build_config
    from tunecard.inference.predictor import load
    from tunecard.pipeline import train as run_training

    sample = SAMPLES / "wnut17"
    config = build_config(None, dict(task="token-classification", train=str(sample / "train.conll"),
                                     validation=str(sample / "dev.conll"), test=str(sample / "test.conll"),
                                     output=output, num_epochs=epochs, dataset_name="wnut_17 (sample)",
                                     learning_rate=1e-4))
    # Re-running the demo replaces its own earlier run folder, never anything else.
    earlier_run = (Path(output) / CONFIG_FILE).is_file()
    result = run_training(config, overwrite=earlier_run, console=console)
    _print_summary(result)
    sentence = "Heading to Seattle with Taylor Swift to watch the new Star Wars movie on Netflix"
    entities = load(result.output).predict([sentence])[0]
    out.print_json(json.dumps({"text": sentence, "entities": entities}, ensure_ascii=False), indent=None)
    from tunecard.reporting.report import write_report

    console.print(f"card: {result.output / 'README.md'}")
    console.print(f"report: {write_report(result.output)}")


@app.command()
def doctor(
    path: Path = typer.Argument(..., help="A run folder, a model folder with README.md, or a Markdown card."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    strict: bool = typer.Option(False, help="Exit 1 when an error-level finding is found."),
):
    """Diagnose a training run or audit any model card: findings with evidence and remedies."""
    from tunecard.doctor import doctor_command

    raise typer.Exit(doctor_command(path, as_json, strict))


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `tunecard train`."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML file. Default: RUN_DIR/report.html."),
    open_: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    overwrite: bool = typer.Option(False, help="Replace an existing file that is not a tunecard report."),
):
    """One self-contained HTML page of a run: scores, diagnosis, per-epoch and per-label tables, plots, data, config."""
    from tunecard.reporting.report import write_report

    path = write_report(run_dir, output, overwrite=overwrite)
    console.print(f"[bold green]wrote[/] {_escape(str(path))}")
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run folders."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Runs side by side: the hyperparameters that differ, their scores, the best run marked."""
    from tunecard.reporting.compare import compare_runs

    comparison = compare_runs(run_dirs)
    if markdown:
        typer.echo(comparison.to_markdown(), nl=False)
    elif as_json:
        out.print_json(json.dumps(comparison.to_dict(), ensure_ascii=False, default=str))
    else:
        out.print(comparison.to_rich())


@app.command()
def init(
    recipe: Optional[str] = typer.Argument(None, help="Recipe to write (see --list)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write. Default: RECIPE.yaml here."),
    list_: bool = typer.Option(False, "--list", help="List the recipes and what they reproduce."),
    force: bool = typer.Option(False, help="Replace an existing file."),
):
    """Write a ready recipe (a published card's hyperparameters) as a starting config, or list them."""
    from tunecard.recipes import list_recipes, write_recipe

    if list_ or recipe is None:
        from rich import box
        from rich.measure import Measurement
        from rich.table import Table

        table = Table(title="recipes (tunecard init NAME -o FILE)", box=box.SIMPLE_HEAD)
        for column in ("name", "task", "model", "dataset", "published"):
            table.add_column(column, no_wrap=True)
        for r in list_recipes():
            table.add_row(r.name, r.task, r.model, r.dataset, r.published or "-")
        # Never cut a cell to fit a narrow terminal or a pipe: a truncated name cannot be typed back.
        needed = Measurement.get(out, out.options.update_width(1000), table).maximum
        Console(width=max(out.width, needed)).print(table)  # out.print clamps to the terminal's width
        return
    path = write_recipe(recipe, output, force=force)
    console.print(f"[bold green]wrote[/] {path}: edit its data paths, then: tunecard train {path}"
                  " (add --set model=embedded to run offline with the packaged MiniLM)")


@app.command()
def search(
    config_file: Optional[Path] = typer.Argument(None, help="Training config: the base of every trial."),
    trials: int = typer.Option(..., help="Finished trials wanted; re-running continues the study up to this count."),
    metric: Optional[str] = typer.Option(None, help="Validation metric to optimise (default: metric_for_best_model)."),
    space: Optional[Path] = typer.Option(None, help="Search space YAML (default: see docs/search.md)."),
    output: Optional[str] = typer.Option(None, help="Search folder: study.db, trial-NNN/, leaderboard, best_config."),
    set_: list[str] = typer.Option([], "--set", help="Override a base config key (repeatable)."),
    pruning: bool = typer.Option(True, help="Stop trials below the median of earlier ones at the same evaluation."),
    pruner_startup_trials: int = typer.Option(3, help="Finished trials before any pruning."),
    pruner_warmup_evaluations: int = typer.Option(0, help="Evaluations of a trial before it can be pruned."),
    quiet: bool = typer.Option(False, help="No per-evaluation rows."),
    trust_pickle: bool = typer.Option(False, help="Allow a base model with pickle weights only (runs code)."),
):
    """Search hyperparameters with Optuna; every trial is a run folder, the study resumes from OUTPUT/study.db."""
    import optuna
    from rich.measure import Measurement

    from tunecard.config import build_config
    from tunecard.search.study import load_space, render_leaderboard
    from tunecard.search.study import search as run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints its own lines per trial
    config = build_config(config_file, {"output": output}, set_)
    result = run_search(config, trials=trials, metric=metric, space=load_space(space) if space else None,
                        pruning=pruning, pruner_startup_trials=pruner_startup_trials,
                        pruner_warmup_evaluations=pruner_warmup_evaluations, console=None if quiet else console,
                        progress=not quiet, trust_pickle=trust_pickle)
    table = render_leaderboard(result.leaderboard, metric or config.metric_for_best_model,
                               title=f"{result.output} ({result.study.study_name})")
    # As wide as the table needs: values and key names are never cut to fit a narrow terminal or a pipe.
    needed = Measurement.get(out, out.options.update_width(1000), table).maximum
    Console(width=max(out.width, needed)).print(table)
    if result.best_config is not None:
        console.print(f"[bold green]wrote[/] {result.best_config}, leaderboard.md and leaderboard.json")
    else:
        console.print("[yellow]no trial completed[/] (all pruned or failed): no best_config.yaml; see leaderboard.md")


@app.command()
def env():
    """Versions and hardware, for bug reports."""
    from tunecard.environment import describe, use_bf16

    out.print_json(json.dumps(describe(use_bf16("auto"))))


def _quiet_libraries() -> None:
    """The CLI prints its own progress; the libraries' load reports and shard bars are noise there."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if len(sys.argv) > 1 and sys.argv[1] in ("train", "predict", "evaluate", "demo", "search", "export", "serve"):
        _quiet_libraries()
    try:
        app()
    except TunecardError as error:
        console.print(f"[bold red]error[/] {_escape(str(error))}")
        raise SystemExit(2) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    main()
