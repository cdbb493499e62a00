"""Use a trained folder: `tunecard.load(DIR).predict(texts)`.

NER predictions are made on words exactly as in training (first subword, windows for long texts), where the
words are the tokenizer's own pre-tokenized words of the raw text; each entity comes back with its label,
character offsets into the text, surface string and score (mean probability of its words' predicted tags).
Multi-label models give every label whose probability (sigmoid) is at or above its threshold, tuned on validation
and saved in the folder's config.json (`tunecard.thresholds`; 0.5 for a label without one), with its score.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import torch

from tunecard import environment
from tunecard import speed as speed_layer
from tunecard.config import CONFIG_FILE
from tunecard.data.example import TextExample, TokenExample
from tunecard.encoding.batching import (SORTED_PAD_TO_MULTIPLE_OF, PadCollator, forward_batches,
                                        padding_changes_outputs)
from tunecard.encoding.encoder import Encoder, document_chunks, split_words, unpadded_backend
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.errors import ModelError
from tunecard.metrics import DEFAULT_THRESHOLD, extract_entities
from tunecard.metrics.decoding import DECODINGS, TagDecoder
from tunecard.metrics.multilabel import decide
from tunecard.training.evaluate import (RECHECK_MARGIN, CloseCallFilter, decoded_ids, rechecked_batches,
                                        threshold_logits)

# Texts encoded at a time by predict and evaluate_folder: features cost about 2 KB per sentence, so encoding a
# whole 100k-line file at once would hold hundreds of MB; batches are still length-sorted within a chunk.
CHUNK_SIZE = 4096
# Word lists of several lengths run packed and padded once at load: packing is used only if the logits agree.
PACKING_PROBE = [("Peter Blackburn visited the European Commission in Brussels on Thursday to discuss the plan with "
                  "officials from Germany and France").split()[:n] for n in (2, 5, 9, 13, 19)]
# predict (NER): a sentence whose close calls allow more combinations of near-tied labels than this is predicted
# again without checking whether they could change its entities.
MAX_TIED_CHOICES = 64


def task_of(folder: Path) -> str:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError("E301", "model folder has no config.json.", path=folder,
                         fix="point at a folder written by `tunecard train` or save_pretrained.")
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    architectures = settings.get("architectures") or []
    if any(a.endswith("ForTokenClassification") for a in architectures):
        return "token-classification"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        if settings.get("problem_type") == "multi_label_classification":
            return "multi-label-classification"
        return "text-classification"
    raise ModelError("E307", f"the model's architectures {architectures} are not a token or sequence classifier.",
                     path=folder, fix="train it with `tunecard train` first.")


def saved_settings(folder: Path) -> dict:
    """The run's train_config.yaml as saved ({} for a folder without one), read once at load: prediction windows,
    document context and decoding follow the training run."""
    import yaml

    path = folder / CONFIG_FILE
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def saved_context_size(saved: dict) -> int:
    """Subwords of document context per side the run trained with (`saved_settings`' context and context_size),
    0 for none, so prediction and evaluation feed the model what training fed it."""
    from tunecard.config import DEFAULT_CONTEXT_SIZE

    if saved.get("context") != "document":
        return 0
    return int(saved.get("context_size") or DEFAULT_CONTEXT_SIZE)


def document_lines(document: str) -> list[tuple[int, str]]:
    """The sentences of a document for `Predictor.predict_documents`: its lines (split at \\n, a \\r before it
    dropped), each with the character offset where it starts."""
    lines, start = [], 0
    for line in document.split("\n"):
        lines.append((start, line[:-1] if line.endswith("\r") else line))
        start += len(line) + 1
    return lines


def words_with_offsets(tokenizer, text: str) -> list[tuple[str, int, int]]:
    """Split raw text into the tokenizer's words, with character offsets into `text`."""
    return split_words(unpadded_backend(tokenizer), [text])[0]


class Predictor:
    """A trained folder loaded for prediction.

    Args:
        folder: a run folder from `tunecard train` (or any save_pretrained token/sequence classifier).
        batch_size: inputs per forward pass (packed NER passes: `batch_size` x 64 tokens). 64: on the 1000
            CoNLL-2003 dev sentences 1259 sentences/s against 1142 at 32 and 1153 at 128 (bf16, rechecked).
        precision: "auto", "bf16" or "fp32" (torch backend; ONNX Runtime runs the exported graph as it is).
        trust_pickle: allow pickle weights.
        backend: "torch", or "onnx" for the folder's ONNX export (`tunecard export DIR --onnx`) run by ONNX Runtime.
        onnx_file: onnx backend: the .onnx file to run. Defaults to DIR/onnx/model.onnx.
        quantized: onnx backend: run the int8 export (model.int8.onnx) instead.
        speed: "auto" (the speed layer's prediction levers: packed passes for NER and oneDNN's fused bf16 Linears
            on CPU, each kept only if the model gives the same logits that way on a probe at load; `speed_plan`
            says what is used and why) or "off".
        decoding: NER: "argmax" or "constrained" (`metrics.decoding`); None (default): as the run was trained and
            evaluated (train_config.yaml's `decoding`, argmax where none is saved).
        device: "auto" (CUDA where there is a GPU, else the CPU), or a torch device name.
        recheck_margin: torch backend with bf16 weights (default RECHECK_MARGIN): a text whose prediction is a
            close call in bf16 (for some word, NER, or for the text, classification, the two best logits are less
            than this far apart) is predicted again with the fp32 weights, which are kept for it; 0 turns it off.
            bf16 rounding moves a logit by up to about 0.1 on MiniLM, so only close calls can flip
            (docs/performance.md, "Close calls"). Nothing to do in fp32. `predict` on NER leaves out the close
            calls that no choice among the near-tied labels would give other entities (`_entities_may_change`;
            with constrained decoding every close call is rechecked). `rechecked` counts the texts (windows, for
            long NER texts) that the last `predict` ran again.
    """

    def __init__(self, folder: str | Path, batch_size: int = 64, precision: str = "auto", trust_pickle: bool = False,
                 backend: str = "torch", onnx_file: str | Path | None = None, quantized: bool = False,
                 speed: str = "auto", recheck_margin: float | None = None, device: str = "auto",
                 decoding: str | None = None):
        from tunecard.inference.onnx_runtime import BACKENDS, check_choice, load_onnx_model

        SPEEDS = (speed_layer.AUTO, speed_layer.OFF)

        self.folder = Path(folder)
        if recheck_margin is not None and not recheck_margin >= 0:
            raise ModelError("E324", f"the recheck margin must be 0 or more, not {recheck_margin}.",
                             fix="give a margin in logits, such as 0.15, or 0 to turn rechecking off.")
        if not self.folder.is_dir():
            raise ModelError("E308", "model folder not found.", path=self.folder, fix="check the path.")
        check_choice(backend, BACKENDS, "backend")
        if backend != "onnx" and (onnx_file is not None or quantized):
            raise ModelError("E324", "an ONNX file or the quantized model was asked for with the torch backend.",
                             fix="add --backend onnx.")
        if backend == "onnx" and recheck_margin:
            raise ModelError("E324", "rechecking close calls runs the torch fp32 weights; the ONNX backend has none.",
                             fix="use the torch backend, or leave out the recheck margin.")
        self.task = task_of(self.folder)
        self.backend = backend
        self.tokenizer = load_tokenizer(str(self.folder))
        check_choice(speed, SPEEDS, "speed")
        if backend == "onnx":  # same interface as the torch model: batching and word assembly below are shared
            self.model = load_onnx_model(self.folder, onnx_file, quantized)
        else:
            self.model = load_model(str(self.folder), self.task, None, trust_pickle=trust_pickle)
            self.model.to(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.model.eval()
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        label2id = {v: k for k, v in self.id2label.items()}
        # multi-label: each label's decision threshold (saved by training in config.json; 0.5 where none is)
        saved = (getattr(self.model.config, "tunecard", None) or {}).get("thresholds") or {}
        self.thresholds = [float(saved.get(self.id2label[i], DEFAULT_THRESHOLD)) for i in sorted(self.id2label)]
        # multi-label: the thresholds as logits, for the close calls of each pass (fixed once loaded)
        self.decision_logits = threshold_logits(self.thresholds) if self.is_multi_label else None
        limit = environment.model_max_length(self.tokenizer, self.model)
        run = saved_settings(self.folder)
        self.max_length = min(run.get("max_length") or limit, limit)  # the windows training used
        # NER trained with document context: `predict_documents` feeds each sentence the same context
        self.context_size = saved_context_size(run) if self.is_ner else 0
        self.decoding, self.decoder = self._decoder((run.get("decoding") or "argmax") if decoding is None else decoding)
        self.encoder = Encoder(self.tokenizer, label2id, self.max_length, context_size=self.context_size)
        self.collator = PadCollator(self.tokenizer.pad_token_id, SORTED_PAD_TO_MULTIPLE_OF)
        self.batch_size = batch_size
        model_device = next(self.model.parameters()).device
        self.bf16 = backend == "torch" and environment.use_bf16(precision, model_device)
        # the load-time checks' inputs (packing, oneDNN Linears), encoded once
        probe = (self._encode_words(PACKING_PROBE) if self.is_ner else
                 self.encode([" ".join(words) for words in PACKING_PROBE]))
        self.speed_plan = speed_layer.plan_prediction(speed, self.model, probe, self.tokenizer.pad_token_id,
                                                      is_ner=self.is_ner, backend=backend)
        self.packed = self.speed_plan.eval_packed  # packed (padding-free if it can) NER passes, or None
        # A model that computes over padding (ConvBERT's convolution, Funnel's pooling) gives a text other logits
        # beside longer ones: each text then runs alone, unpadded, as pipeline runs it. That is the architecture's
        # property, asked of the fp32 torch weights: an int8 ONNX graph's activation scales are taken per batch, so
        # its logits always move a little with the texts beside them.
        self.one_text_per_pass = padding_changes_outputs(self._architecture_probe_model(trust_pickle), probe,
                                                         self.collator)
        if self.one_text_per_pass:
            self.batch_size, self.packed = 1, None
        # bf16: the weights are cast once here, not by autocast in every batch (docs/performance.md), so the
        # forward passes below run without autocast. Rechecking keeps the fp32 model beside the bf16 copy.
        if not self.bf16:  # in fp32 every call is already fp32's
            recheck_margin = 0.0
        self.recheck_margin = RECHECK_MARGIN if recheck_margin is None else recheck_margin
        self.fp32_model = None
        self.rechecked = 0
        if self.bf16 and self.recheck_margin:
            self.fp32_model = self.model
            self.model = copy.deepcopy(self.model).to(torch.bfloat16)
        elif self.bf16:
            self.model.to(torch.bfloat16)
        if self.speed_plan.device == "cpu" and speed == "auto":
            speed_layer.prediction_levers(self.speed_plan, self.model, lambda: self._probe_logits(probe),
                                          bf16=self.bf16)

    def _architecture_probe_model(self, trust_pickle: bool):
        """The model to ask whether padding changes outputs: the torch model in use, or with the ONNX backend the
        folder's torch weights (the ONNX graph itself where the folder holds none)."""
        if self.backend == "torch":
            return self.model
        try:
            return load_model(str(self.folder), self.task, None, trust_pickle=trust_pickle).eval()
        except ModelError:
            return self.model

    def _decoder(self, decoding: str) -> tuple[str, TagDecoder | None]:
        """The decoding asked for (or the run's), and its TagDecoder for constrained NER decoding."""
        if decoding not in DECODINGS:
            raise ModelError("E324", f"decoding must be one of {', '.join(DECODINGS)}, not {decoding!r}.",
                             path=self.folder, fix="use argmax or constrained.")
        if decoding == "argmax":
            return "argmax", None
        if not self.is_ner:
            raise ModelError("E324", f"decoding {decoding} chooses NER tags; this folder holds a {self.task} model.",
                             path=self.folder, fix="leave out --decoding.")
        try:
            return decoding, TagDecoder(self.id2label)
        except ValueError as error:
            raise ModelError("E324", f"constrained decoding needs IOB2 labels: {error}.", path=self.folder,
                             fix="use argmax decoding for this model.") from None

    def close(self) -> None:
        """Undo the speed layer's changes to the model (the oneDNN Linears)."""
        speed_layer.release(self.speed_plan)

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _probe_logits(self, features: list) -> torch.Tensor:
        found = {}
        for indices, logits, _ in forward_batches(self.model, features, self.collator, self.batch_size,
                                                  with_labels=False, packed=self.packed if self.is_ner else None):
            found.update({index: logits[row] for row, index in enumerate(indices)})
        return torch.cat([found[i][:len(features[i])] if self.is_ner else found[i][None]
                          for i in range(len(features))])

    @property
    def is_ner(self) -> bool:
        return self.task == "token-classification"

    @property
    def is_multi_label(self) -> bool:
        return self.task == "multi-label-classification"

    def predict(self, texts: list[str]) -> list:
        """Entities (NER), label and probabilities (classification), or the labels at or above their thresholds
        with their scores and every label's probability (multi-label), for each text."""
        if isinstance(texts, str):
            texts = [texts]
        predict_chunk = self._predict_entities if self.is_ner else self._predict_labels
        self.rechecked = 0
        results: list = []
        for start in range(0, len(texts), CHUNK_SIZE):  # only one chunk's features exist at a time
            results.extend(predict_chunk(texts[start:start + CHUNK_SIZE]))
        return results

    def predict_documents(self, documents: list[str]) -> list[list[dict]]:
        """NER on whole documents: the entities of each, with character offsets into the document.

        Each line of a document is a sentence (a line may hold several; blank lines are empty sentences). A model
        trained with `context: document` sees each sentence with the sentences around it in its document, as in
        training (`Encoder.context_size`); without it, the answer is `predict` of each line, its offsets moved to
        where the line starts. A text given to `predict` is a document of one sentence.
        """
        if isinstance(documents, str):
            documents = [documents]
        self.check_documents()
        self.rechecked = 0
        results: list[list[dict]] = []
        chunk: list[str] = []
        lines = 0
        for document in [*documents, None]:  # whole documents to a chunk: their sentences need each other
            if document is None or (chunk and lines >= CHUNK_SIZE):
                results.extend(self._predict_document_chunk(chunk))
                chunk, lines = [], 0
            if document is not None:
                chunk.append(document)
                lines += document.count("\n") + 1
        return results

    def check_documents(self) -> None:
        """E325 unless this model predicts documents (NER)."""
        if not self.is_ner:
            raise ModelError("E325", "documents are predicted by NER models; this folder holds a text classifier.",
                             path=self.folder, fix="leave out --document: each line is then one text.")

    def _predict_document_chunk(self, documents: list[str]) -> list[list[dict]]:
        if not documents:
            return []
        sentences = [(index, start, line) for index, document in enumerate(documents)
                     for start, line in document_lines(document)]
        features, words = self.encoder.encode_raw_documents([line for _, _, line in sentences],
                                                            [index for index, _, _ in sentences])
        word_lists = [[w for w, _, _ in ws] for ws in words]
        tagged = self._tag_words(word_lists, self._entities_may_change(word_lists), features)
        results: list[list[dict]] = [[] for _ in documents]
        for (index, start, _), word_spans, word_tags in zip(sentences, words, tagged):
            results[index].extend(_entities(documents[index], word_spans, word_tags, start))
        return results

    def encode(self, texts: list[str]) -> list:
        """The model inputs for raw texts: NER texts split into the tokenizer's words, then windowed."""
        if self.is_ner:
            return self.encoder.encode_raw_texts(texts)[0]
        return self.encoder.encode_texts([TextExample(text=t, label="") for t in texts], labelled=False)

    def _encode_words(self, words_per_example: list[list[str]]) -> list:
        return self.encoder.encode_tokens([TokenExample(tokens=list(words), tags=[]) for words in words_per_example])

    def predict_words(self, words_per_example: list[list[str]]) -> list[list[tuple[str, float]]]:
        """NER on pre-split words: (tag, probability) per word."""
        return self._tag_words(words_per_example)

    def _tag_words(self, words_per_example: list[list[str]], recheck_filter: CloseCallFilter | None = None,
                   features: list | None = None) -> list[list[tuple[str, float]]]:
        """(tag, probability) per word; `features`: the words' encoding, if already made."""
        features = self._encode_words(words_per_example) if features is None else features
        out: list[list] = [[None] * len(words) for words in words_per_example]
        for indices, logits, _ in self._passes(features, packed=self.packed, recheck_filter=recheck_filter):
            probabilities = torch.softmax(logits, dim=-1)
            if self.decoder is None:
                best_p, best_id = probabilities.max(dim=-1)
                best_p, best_id = best_p.tolist(), best_id.tolist()  # one conversion, not one per word
            else:  # the chosen tag's probability, which may not be the word's best
                best_id = decoded_ids(self.decoder, logits, [features[i] for i in indices])
                best_p = probabilities.tolist()
                best_p = [{position: best_p[row][position][label] for position, label in ids.items()}
                          for row, ids in enumerate(best_id)]
            for row, feature_index in enumerate(indices):
                feature = features[feature_index]
                for position, word in feature.word_positions:
                    out[feature.example_index][word] = (self.id2label[best_id[row][position]], best_p[row][position])
        return out

    def _entities_may_change(self, words_per_example: list[list[str]]) -> CloseCallFilter | None:
        """For `predict`: a sentence with a close call is predicted again only if some choice among each word's
        near-tied labels (within the margin of its best) gives other entities than its best labels do. B-LOC
        against I-LOC after a word outside any LOC, say, starts the same entity either way (16% of the close
        calls on the 1000 CoNLL-2003 dev sentences). The window of a long sentence is always predicted again: the
        tags beside its edges are in another window. With constrained decoding, None: a close call anywhere in a
        sentence may move its best valid sequence, so every close call is predicted again."""
        if self.decoder is not None:
            return None

        def may_change(feature, logits: torch.Tensor, margin: float) -> bool:
            if len(feature.word_positions) != len(words_per_example[feature.example_index]):
                return True
            word_logits = logits[[position for position, _ in feature.word_positions]].float()
            tied = word_logits > word_logits.max(dim=-1, keepdim=True).values - margin
            best = word_logits.argmax(dim=-1).tolist()
            tags = [self.id2label[label] for label in best]
            counts = tied.sum(dim=-1).tolist()
            choices = {word: [self.id2label[label] for label in tied[word].nonzero().view(-1).tolist()]
                       for word, count in enumerate(counts) if count > 1}
            if math.prod(len(tags_here) for tags_here in choices.values()) > MAX_TIED_CHOICES:
                return True
            entities = extract_entities(tags)
            for combination in itertools.product(*choices.values()):
                changed = list(tags)
                for word, tag in zip(choices, combination):
                    changed[word] = tag
                if extract_entities(changed) != entities:
                    return True
            return False

        return may_change

    def _passes(self, features: list, packed=None, recheck_filter: CloseCallFilter | None = None):
        """The forward passes over `features`, close calls (narrowed by `recheck_filter`) from the fp32 pass
        (`evaluate.rechecked_batches`), counted in `rechecked`."""
        for indices, logits, batch, again in rechecked_batches(
                self.model, features, self.collator, self.batch_size, with_labels=False, packed=packed,
                recheck_model=self.fp32_model, recheck_margin=self.recheck_margin, recheck_filter=recheck_filter,
                decision_logits=self.decision_logits):
            self.rechecked += len(indices) if again else 0
            yield indices, logits, batch

    def _predict_entities(self, texts: list[str]) -> list[list[dict]]:
        features, words = self.encoder.encode_raw_texts(texts)
        word_lists = [[w for w, _, _ in ws] for ws in words]
        tagged = self._tag_words(word_lists, self._entities_may_change(word_lists), features)
        return [_entities(text, word_spans, word_tags) for text, word_spans, word_tags in zip(texts, words, tagged)]

    def _predict_labels(self, texts: list[str]) -> list[dict]:
        features = self.encode(texts)
        results: list[dict | None] = [None] * len(texts)
        for indices, logits, _ in self._passes(features):
            if self.is_multi_label:  # sigmoid in fp32, as evaluation and threshold tuning compute it
                answers = map(self._label_set, torch.sigmoid(logits.float()).tolist())
            else:
                answers = map(self._label, torch.softmax(logits, dim=-1).tolist())
            for feature_index, answer in zip(indices, answers):
                results[features[feature_index].example_index] = answer
        return results

    def _label(self, probabilities: list[float]) -> dict:
        """One label: {"label", "score", "probabilities": {label: probability}}."""
        probs = {self.id2label[i]: round(p, 4) for i, p in enumerate(probabilities)}
        label = max(probs, key=probs.get)
        return {"label": label, "score": probs[label], "probabilities": probs}

    def _label_set(self, probabilities: list[float]) -> dict:
        """Multi-label: {"labels": [{"label", "score"}, ...] at or above their thresholds, best first,
        "probabilities": {label: probability}}."""
        (chosen_ids,) = decide([probabilities], self.thresholds)
        chosen = sorted(((self.id2label[i], probabilities[i]) for i in chosen_ids), key=lambda item: -item[1])
        return {"labels": [{"label": label, "score": round(p, 4)} for label, p in chosen],
                "probabilities": {self.id2label[i]: round(p, 4) for i, p in enumerate(probabilities)}}


def _entities(text: str, word_spans: list[tuple[str, int, int]], word_tags: list[tuple[str, float]],
              shift: int = 0) -> list[dict]:
    """The entities of tagged words: label, character offsets (the words' offsets plus `shift`: where the words'
    text starts in `text`), surface string and score (the mean probability of their words' tags)."""
    entities = []
    for label, start, end in extract_entities([t for t, _ in word_tags]):
        char_start, char_end = word_spans[start][1] + shift, word_spans[end - 1][2] + shift
        score = sum(p for _, p in word_tags[start:end]) / (end - start)
        entities.append({"label": label, "start": char_start, "end": char_end,
                         "text": text[char_start:char_end], "score": round(score, 4)})
    return entities


def load(folder: str | Path, **kwargs) -> Predictor:
    """Load a trained folder for prediction (see Predictor)."""
    return Predictor(folder, **kwargs)


def evaluate_folder(folder: str | Path, data: str | Path, options=None, batch_size: int = 64,
                    precision: str = "auto", **predictor_options) -> dict:
    """Score a saved model on any readable file (labels must be ones the model knows).

    `predictor_options` go to Predictor (backend, onnx_file, quantized, trust_pickle, decoding).
    """
    from tunecard.data import stream_corpus
    from tunecard.errors import DataError
    from tunecard.training.evaluate import Evaluation

    predictor = Predictor(folder, batch_size=batch_size, precision=precision, **predictor_options)
    # Checked whole first (every data error before a forward pass), then read again chunk by chunk: neither the
    # file nor its examples are held (docs/bad-input.md, "Long sentences and large files").
    corpus = stream_corpus(data, options, task=predictor.task)
    if corpus.task != predictor.task:  # label lists (or a label separator) for a single-label model
        raise DataError("E115", f"the file holds {corpus.task} data (label lists), but the model is a "
                        f"{predictor.task} model", path=corpus.path,
                        fix="evaluate a multi-label model on it, or give one label per text (no label_separator).")
    labels = set(predictor.id2label.values())
    if predictor.is_ner:
        known = {label[2:] for label in labels if label != "O"}
        what = "entity types"
    else:
        known, what = labels, "labels"
    unknown = sorted(set(corpus.labels_found) - known)
    if unknown:
        raise DataError("E150", f"{what} {unknown[:10]} are not in the model's label map {sorted(known)}.",
                        path=corpus.path, fix="evaluate on data with the model's label set.")
    evaluation = Evaluation(predictor.task, predictor.id2label, decoding=predictor.decoding,
                            thresholds=predictor.thresholds if predictor.is_multi_label else None)
    encode = predictor.encoder.encode_tokens if predictor.is_ner else predictor.encoder.encode_texts
    # one chunk's examples and features at a time: bounded memory; with document context, chunks end where
    # documents end
    chunks = document_chunks(corpus, CHUNK_SIZE) if predictor.encoder.context_size else corpus.chunks(CHUNK_SIZE)
    for chunk in chunks:
        evaluation.add(predictor.model, encode(chunk), chunk, collator=predictor.collator,
                       batch_size=predictor.batch_size,
                       packed=predictor.packed, recheck_model=predictor.fp32_model,
                       recheck_margin=predictor.recheck_margin)
    result = evaluation.result()
    result["data"] = {"path": corpus.path, "examples": len(corpus), "scheme": corpus.scheme,
                      "repaired": corpus.repaired, "warnings": corpus.all_warnings}
    if corpus.span_counts is not None:
        result["data"]["span_counts"] = corpus.span_counts
    return result
