"""Peak memory of `tunecard evaluate` at 10k and 100k sentences (issue 29 item 10: the 100k peak must be at most
1.2x the 10k peak). A memory measurement, not a timing.

Each size runs `tunecard evaluate MODEL --data FILE --json` in a fresh process; its peak resident size is the
kernel's (`os.wait4` rusage, ru_maxrss). The data are CoNLL-2003 training sentences (four columns) repeated to
the size wanted (100k sentences is about 23 MB); the model is the embedded MiniLM with a token-classification
head for CoNLL-2003's tags (random: what is measured is memory, not scores), saved once in the work folder.

    .venv/bin/python benchmarks/evaluate_memory.py                    # 10k and 100k sentences
    .venv/bin/python benchmarks/evaluate_memory.py --sizes 10000 100000 --work /tmp/evaluate-memory
    .venv/bin/python benchmarks/evaluate_memory.py --tiny             # a tiny random BERT instead of MiniLM
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "conll2003" / "train.txt"
VOCAB = ROOT.parent / "shared" / "vocab" / "bert-base-cased" / "vocab.txt"
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def sentences(path: Path) -> list[str]:
    """The sentence blocks of a CoNLL file (lines kept as written), -DOCSTART- blocks left out."""
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [block.strip("\n") for block in blocks if block.strip() and not block.lstrip().startswith("-DOCSTART-")]


def write_data(path: Path, blocks: list[str], n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(blocks[i % len(blocks)] + "\n\n")


def build_model(folder: Path, tiny: bool) -> Path:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, BertConfig, BertForTokenClassification

    from tunecard.config import default_model

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    id2label, label2id = dict(enumerate(TAGS)), {tag: i for i, tag in enumerate(TAGS)}
    if tiny:
        from transformers import BertTokenizer

        tokenizer = BertTokenizer(vocab=str(VOCAB), do_lower_case=False)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, num_labels=len(TAGS), id2label=id2label, label2id=label2id)
        model = BertForTokenClassification(config)
    else:
        base = default_model()
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForTokenClassification.from_pretrained(base, num_labels=len(TAGS), id2label=id2label,
                                                                label2id=label2id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def peak_rss(model: Path, data: Path) -> tuple[int, dict]:
    """Peak resident bytes of one `tunecard evaluate` process, and its JSON result."""
    command = [sys.executable, "-m", "tunecard", "evaluate", str(model), "--data", str(data), "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, from the kernel
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode:
        raise SystemExit(f"evaluate failed:\n{stderr.decode()[-3000:]}")
    return usage.ru_maxrss * 1024, json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tunecard-evaluate-memory"))
    parser.add_argument("--tiny", action="store_true", help="a tiny random BERT instead of the embedded MiniLM")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.work / ("tiny-model" if args.tiny else "minilm-model"), args.tiny)
    blocks = sentences(DATA)
    rows = []
    for n in sorted(args.sizes):
        data = args.work / f"conll-{n}.txt"
        write_data(data, blocks, n)
        peak, result = peak_rss(model, data)
        assert result["sentences"] == n, (result["sentences"], n)
        rows.append({"sentences": n, "file_mb": round(data.stat().st_size / 1e6, 1), "peak_rss_mb": round(peak / 1e6)})
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) > 1:
        ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        print(json.dumps({"ratio_largest_to_smallest": round(ratio, 3), "limit": 1.2, "ok": ratio <= 1.2}))


if __name__ == "__main__":
    main()
