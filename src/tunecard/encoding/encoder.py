"""Turn examples into model inputs: subword alignment and windows for texts longer than the model.

Token classification works on words. Each word is labelled on its first subword (or on all of them), and a
sentence longer than `max_length` subwords is cut into overlapping windows: every word is *owned* by exactly
one window, where it carries its label; the words around it are context only (label -100). Evaluation reads
the prediction of each word from the window that owns it, so no gold label is ever missing from the score.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tunecard.data.example import TextExample, TokenExample
from tunecard.errors import ConfigError

IGNORE_INDEX = -100  # the label id PyTorch's cross-entropy (and the Trainer) skips

# Fraction of a window's subword budget given to context on each side of the owned words.
WINDOW_CONTEXT_FRACTION = 0.25


@dataclass
class Feature:
    """One model input: a whole sentence, or one window of a long one."""

    inputs: dict  # input_ids, attention_mask, (token_type_ids): lists of ints
    # per subword for NER (-100 where not scored); class id for classification; multi-label: 0.0/1.0 per label
    labels: list[int] | int | list[float]
    example_index: int
    # NER: (subword position, word index) of the first subword of each word this window owns.
    word_positions: list[tuple[int, int]] = field(default_factory=list)
    context: int = 0  # NER with document context: subwords of other sentences in this input

    def __len__(self) -> int:
        return len(self.inputs["input_ids"])

    def model_inputs(self) -> dict:
        return {**self.inputs, "labels": self.labels}


@dataclass
class EncodingStats:
    """What encoding did to a split: reported in stats and on the card."""

    examples: int = 0
    features: int = 0
    windowed_examples: int = 0  # NER: sentences longer than max_length, split into windows
    windows: int = 0  # NER: features created from those sentences
    truncated_examples: int = 0  # classification: texts cut at max_length
    truncated_words: int = 0  # NER: words whose own subwords exceed a whole window (tail subwords cut)
    unknown_words: int = 0  # NER: words the tokenizer drops entirely (zero-width, control chars): fed as unk
    subwords: list[int] = field(default_factory=list)  # per example, special tokens included
    # NER with document context (Encoder.context_size > 0): the most subwords per side, the documents, and per
    # example the subwords of neighbouring sentences fed with it (summed over its windows)
    context_size: int = 0
    documents: int = 0
    context_subwords: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        import statistics

        lengths = self.subwords or [0]
        context = {}
        if self.context_size:
            given = self.context_subwords or [0]
            context = {"context": {
                "mode": "document", "subwords_per_side": self.context_size, "documents": self.documents,
                "examples_with_context": sum(1 for n in self.context_subwords if n),
                "context_subwords_mean": round(statistics.fmean(given), 1), "context_subwords_max": max(given),
            }}
        return {
            "examples": self.examples,
            "features": self.features,
            "windowed_examples": self.windowed_examples,
            "windows": self.windows,
            "truncated_examples": self.truncated_examples,
            "truncated_words": self.truncated_words,
            "unknown_words": self.unknown_words,
            "subwords_min": min(lengths),
            "subwords_median": statistics.median(lengths),
            "subwords_max": max(lengths),
            **context,
        }


# Encoding fields of the Rust tokenizer, by model input name.
_ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


# tokenizer -> (its pipeline's JSON, the unpadded copy made from it)
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def unpadded_backend(tokenizer):
    """The fast tokenizer's own Rust pipeline (`tokenizers.Tokenizer`), copied with padding and truncation off.

    Encoding calls it directly: transformers' wrapper converts every encoding to Python lists of all its fields,
    which took a tenth of prediction's time on short sentences (docs/performance.md). The copy matters: a
    tokenizer.json may switch padding and truncation on, and the wrapper turns them off for each call. Parsing
    the pipeline's JSON takes 34 ms for a 30k vocabulary (writing it 3 ms), so a copy is reused for as long as
    the tokenizer's JSON is unchanged (tokens added later make a new copy).
    """
    from tokenizers import Tokenizer

    pipeline = tokenizer.backend_tokenizer.to_str()
    cached = _BACKENDS.get(tokenizer)
    if cached is not None and cached[0] == pipeline:
        return cached[1]
    backend = Tokenizer.from_str(pipeline)
    backend.no_padding()
    backend.no_truncation()
    _BACKENDS[tokenizer] = (pipeline, backend)
    return backend


def _first_character(text: str, start: int, end: int) -> int | None:
    """Where the first character of text[start:end] that is not whitespace is, or None if there is none: a token's
    offsets may include the space before its word (byte-level BPE without offset trimming, SentencePiece's ▁), and
    a token that covers only whitespace (a lone ▁ or Ġ) or nothing belongs to no word."""
    while start < end and text[start].isspace():
        start += 1
    return start if start < end else None


def text_words(text: str, encoding) -> tuple[list[tuple[str, int, int]], list[int | None]]:
    """The words that `encoding` (of the raw `text`) found, as (word, start, end) character offsets into `text`,
    and each token's index in that list (None for special tokens and for tokens that cover no character of the
    text but whitespace, which belong to no word). A word is the tokenizer's own (its pre-tokenizer's), made of
    its tokens that cover characters; the offsets leave out the space before it."""
    spans: dict[int, list[int]] = {}
    starts: list[int | None] = []
    for word, (start, end) in zip(encoding.word_ids, encoding.offsets):
        start = None if word is None else _first_character(text, start, end)
        starts.append(start)
        if start is None:
            continue
        span = spans.get(word)
        if span is None:
            spans[word] = [start, end]
        else:
            span[0], span[1] = min(span[0], start), max(span[1], end)
    order = sorted(spans)
    rank = {word: index for index, word in enumerate(order)}
    words = [(text[start:end], start, end) for start, end in (spans[w] for w in order)]
    token_words = [None if start is None else rank[word] for word, start in zip(encoding.word_ids, starts)]
    return words, token_words


def split_words(backend, texts: list[str]) -> list[list[tuple[str, int, int]]]:
    """`text_words` for many texts in one batched call of the Rust tokenizer (`unpadded_backend`)."""
    encodings = backend.encode_batch(texts, add_special_tokens=False)
    return [text_words(text, encoding)[0] for text, encoding in zip(texts, encodings)]


def joined(words: list[str]) -> tuple[str, list[int]]:
    """The text pre-split words stand for, one space between them (how `transformers.pipeline` and any user would
    write them), and where each word ends in it."""
    ends, position = [], -1
    for word in words:
        position += len(word) + 1
        ends.append(position)
    return " ".join(words), ends


def word_ids_by_offsets(encoding, text: str, ends: list[int]) -> list[int | None]:
    """Each token's word in the `text` that `encoding` encoded, given where each word ends in it: the word of the
    token's first character that is not whitespace (`_first_character`); None for special tokens and for tokens
    that cover nothing but whitespace."""
    last = len(ends) - 1
    word_ids = []
    for word, (start, end) in zip(encoding.word_ids, encoding.offsets):
        start = None if word is None else _first_character(text, start, end)
        word_ids.append(None if start is None else min(bisect.bisect_right(ends, start), last))
    return word_ids


# Word lists on which `words_encode_as_text` compares the two ways of encoding words: punctuation inside and
# beside words, accents, digits, apostrophes, symbols, CJK, an emoji, a URL, one-letter words, a lone word.
WORD_PROBES = (
    ["b"],
    ["Hello", "world", "a", "b"],
    ["Dr.", "Müller", "(", "ETH", "Zürich", ")", "met", "O'Neil", "at", "9:30am", ",", "then", "left", "—", "quickly",
     "!!"],
    ["naïve", "café", "déjà-vu", "😀", "#hashtag", "@user", "https://example.com/a?b=c", "São", "Paulo", "Łódź"],
    ["北京大学", "的", "王小明", "去", "了", "上海", "。"],
    ["New", "York", "-", "based", "I", "'m", "don't", "U.S.", "$", "3.5", "%", "A", "the", "THE", "The"],
)


def words_encode_as_text(backend) -> bool:
    """Whether encoding pre-split words one by one (`is_pretokenized`) gives, on `WORD_PROBES`, the subwords and word
    alignment that encoding the text they stand for (`joined`) gives. Decided from the tokenizer's behaviour, not
    from its family: WordPiece behind BERT's pre-tokenizer and SentencePiece-style unigram models that mark every
    word with ▁ do; byte-level BPE (RoBERTa, ModernBERT, GPT-2 style) does not, since it marks a word by the space
    before it, which a word encoded alone lacks (or, with add_prefix_space, the first word of a text lacks)."""
    for words in WORD_PROBES:
        text, ends = joined(words)
        alone = backend.encode(words, is_pretokenized=True, add_special_tokens=True)
        as_text = backend.encode(text, add_special_tokens=True)
        if alone.ids != as_text.ids or alone.word_ids != word_ids_by_offsets(as_text, text, ends):
            return False
    return True


def has_offsets(backend) -> bool:
    """Whether the tokenizer maps its tokens back to characters of the text (every word of a probe is found)."""
    text, ends = joined(WORD_PROBES[2])
    found = set(word_ids_by_offsets(backend.encode(text, add_special_tokens=False), text, ends))
    return found >= set(range(len(ends)))


def word_lengths(word_ids: list[int | None], n_words: int) -> list[int]:
    """Subwords per word, for planning windows: a token of no word between two words' tokens (one that covers
    only whitespace, as a lone ▁ may) counts with the word after it, so a window of whole words holds no more
    subwords than its words' counts add up to. Special tokens (before the first word, after the last) count
    nowhere."""
    lengths = [0] * n_words
    between = 0
    seen = False
    for word in word_ids:
        if word is None:
            if seen:
                between += 1
            continue
        lengths[word] += 1 + between
        between, seen = 0, True
    return lengths


def _model_input_names(tokenizer) -> list[str]:
    return [n for n in tokenizer.model_input_names if n in _ENCODING_FIELDS]


def _plan_windows(word_lengths: list[int], budget: int, target: tuple[int, int] | None = None,
                  context_size: int = 0) -> list[tuple[int, int, int, int]]:
    """Split the target words into windows of at most `budget` subwords.

    Args:
        word_lengths: subwords per word of the sequence the target lies in: a sentence, or (document context)
            its whole document, sentence after sentence.
        budget: subwords per window (the model's length less its special tokens).
        target: the (first, end) word range to score; default every word.
        context_size: the most subwords taken from outside the target on each side (document context).

    Returns (context_start, owned_start, owned_end, context_end) word ranges. Owned ranges tile the target exactly
    once: the whole target if it fits the budget, else windows of half the budget. Context grows one word left,
    one word right, while the window still fits the budget; beyond the target, on each side, only while that
    side's outside words total at most `context_size` subwords. Words are whole: a word that does not fit stops
    that side.
    """
    n_words = len(word_lengths)
    first, last = (0, n_words) if target is None else target
    capped = [max(1, min(n, budget)) for n in word_lengths]
    if sum(capped[first:last]) <= budget:
        owned = [(first, last)] if last > first else []
    else:
        context = int(budget * WINDOW_CONTEXT_FRACTION)
        owned_budget = max(1, budget - 2 * context)
        owned = []
        start = first
        while start < last:
            end, used = start, 0
            while end < last and (used + capped[end] <= owned_budget or end == start):
                used += capped[end]
                end += 1
            owned.append((start, end))
            start = end
    windows = []
    for start, end in owned:
        # Grow context one word left, one word right, while the window still fits.
        left, right, total = start, end, sum(capped[start:end])
        outside_left = outside_right = 0  # context subwords beyond the target, per side
        while True:
            grew = False
            if left > 0:
                size, outside = capped[left - 1], left - 1 < first
                if total + size <= budget and (not outside or outside_left + size <= context_size):
                    left -= 1
                    total += size
                    outside_left += size if outside else 0
                    grew = True
            if right < n_words:
                size, outside = capped[right], right >= last
                if total + size <= budget and (not outside or outside_right + size <= context_size):
                    right += 1
                    total += size
                    outside_right += size if outside else 0
                    grew = True
            if not grew:
                break
        windows.append((left, start, end, right))
    return windows


def document_chunks(examples: Iterable, size: int) -> Iterator[list]:
    """The examples in lists of at least `size` (the last may be shorter) that end where a document ends
    (`documents`), so a chunk encoded with document context gives its sentences all the context they have."""
    chunk: list = []
    for example in examples:
        if len(chunk) >= size and (example.doc_id is None or example.doc_id != chunk[-1].doc_id):
            yield chunk
            chunk = []
        chunk.append(example)
    if chunk:
        yield chunk


def documents(examples: list) -> list[range]:
    """The documents of a split, as ranges of example indices: consecutive examples with the same `doc_id` (a
    `-DOCSTART-` block of a CoNLL file, a document id of a JSONL file). An example without one is a document of
    its own, so context never crosses from one document, or from one such example, to another."""
    ranges = []
    start = 0
    for index in range(1, len(examples) + 1):
        if index == len(examples) or examples[index].doc_id is None or examples[index].doc_id != examples[start].doc_id:
            ranges.append(range(start, index))
            start = index
    return ranges


class Encoder:
    """Encodes examples for one tokenizer and label map.

    Args:
        tokenizer: a transformers fast tokenizer.
        label2id: label name -> id (IOB2 tags for NER, class names for classification).
        max_length: most subwords per model input, special tokens included.
        label_all_subwords: NER only; label every subword of a word (B-X continues as I-X) instead of the first.
        context_size: NER only; document context: each sentence is fed with up to this many subwords of the
            sentences before and after it in its document on each side (`_plan_windows`), unlabelled and
            unscored; 0: none. See `documents` for what a document is.
    """

    def __init__(self, tokenizer, label2id: dict[str, int], max_length: int, label_all_subwords: bool = False,
                 context_size: int = 0):
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                "E201",
                f"{type(tokenizer).__name__} is not a fast tokenizer; word alignment needs one.",
                fix="use a model that ships tokenizer.json, or convert its tokenizer with `tokenizers`.",
            )
        self.tokenizer = tokenizer
        self.label2id = label2id
        self.max_length = max_length
        self.label_all_subwords = label_all_subwords
        self.context_size = max(0, int(context_size))
        self.input_names = _model_input_names(tokenizer)
        self._fields = [(name, _ENCODING_FIELDS[name]) for name in self.input_names]
        self.backend = unpadded_backend(tokenizer)
        self.n_special = tokenizer.num_special_tokens_to_add(False)
        if max_length - self.n_special < 1:
            raise ConfigError("E202", f"max_length={max_length} leaves no room for text.", fix="raise max_length.")
        # How pre-split words are encoded: one by one (`is_pretokenized`) where that gives what their text gives,
        # else as their text, each token's word found from its character offsets (`word_ids_by_offsets`).
        self.words_alone = words_encode_as_text(self.backend)
        self.offsets = self.words_alone or has_offsets(self.backend)
        self._truncating_backend = None

    # ---- token classification -------------------------------------------------------------------------
    def encode_raw_texts(self, texts: list[str]) -> tuple[list[Feature], list[list[tuple[str, int, int]]]]:
        """NER prediction on raw texts: the features and the words, with character offsets into their text.

        The words are the tokenizer's own (`text_words`), and a text that fits the model is encoded exactly as
        `transformers.pipeline` encodes it (one call of the tokenizer on the text): what the model saw in
        training is what pipeline gives it, since `encode_tokens` encodes pre-split words as their text. A longer
        text is cut into windows of whole words (`_stretches`), each a stretch of that same encoding.
        """
        self._need_offsets()
        features: list[Feature] = []
        words_of: list[list[tuple[str, int, int]]] = []
        for index, (text, encoding) in enumerate(zip(texts, self.backend.encode_batch(texts, add_special_tokens=True))):
            words, token_words = text_words(text, encoding)
            words_of.append(words)
            if len(encoding.ids) <= self.max_length:
                features.append(self._token_feature(self._inputs(encoding), token_words, None, index,
                                                    range(len(words)), 0))
            elif not words:  # too long, and no word in it (a long run of whitespace tokens): the special tokens
                features.append(self._token_feature(*self._encode_words([]), None, index, range(0), 0))
            else:
                features.extend(self._stretches(encoding, token_words, len(words), index))
        return features, words_of

    def _stretches(self, encoding, word_ids: list[int | None], n_words: int, example_index: int) -> list[Feature]:
        """The features of a raw text longer than max_length: windows of whole words (`_plan_windows`), each a
        stretch of the text's own encoding between the special tokens, so every window gives the model the
        subwords pipeline gives it for the whole text (a word longer than a window keeps its first subwords)."""
        firsts: list[int] = [-1] * n_words
        lasts: list[int] = [-1] * n_words
        for position, word in enumerate(word_ids):
            if word is not None:
                if firsts[word] < 0:
                    firsts[word] = position
                lasts[word] = position
        budget = self.max_length - self.n_special
        features = []
        for left, start, end, right in _plan_windows(word_lengths(word_ids, n_words), budget):
            first = firsts[left]
            stop = min(lasts[right - 1] + 1, first + budget)
            window = self._stretch(encoding, first, stop)
            content = iter(word_ids[first:stop])
            window_word_ids = [None if special else next(content) for special in window.special_tokens_mask]
            features.append(self._token_feature(self._inputs(window), window_word_ids, None, example_index,
                                                range(start, end), 0))
        return features

    def _stretch(self, encoding, start: int, stop: int):
        """Tokens start..stop of an encoding (made with special tokens, which lie outside that stretch), with the
        tokenizer's special tokens around them again."""
        from tokenizers import Encoding

        stretch = Encoding.merge([encoding], growing_offsets=False)  # a copy: truncate works in place
        stretch.truncate(stop, 0, "right")
        stretch.truncate(stop - start, 0, "left")
        return self.backend.post_process(stretch, None, True)

    def encode_raw_documents(self, texts: list[str], doc_ids: list) -> tuple[list[Feature],
                                                                           list[list[tuple[str, int, int]]]]:
        """`encode_raw_texts` for the sentences of documents (`doc_ids`: each text's document, consecutive).

        A sentence that gets no context (none asked for, a document of one sentence) is encoded as
        `encode_raw_texts` encodes its text, so it is predicted as `predict` predicts it. A sentence with context
        is encoded with its neighbours as training encodes its documents (`encode_tokens`: the words, found in
        each text by the tokenizer, one space apart), so the model is fed what it was trained on.
        """
        alone, words = self.encode_raw_texts(texts)
        if not self.context_size:
            return alone, words
        examples = [TokenExample(tokens=[word for word, _, _ in found], tags=[], doc_id=doc_id)
                    for found, doc_id in zip(words, doc_ids)]
        fed = self.encode_tokens(examples)
        with_context = {feature.example_index for feature in fed if feature.context}
        features = [f for f in fed if f.example_index in with_context] + [
            f for f in alone if f.example_index not in with_context]
        features.sort(key=lambda feature: feature.example_index)  # stable: windows stay in order
        return features, words

    def _encode_words(self, words: list[str]) -> tuple[dict, list[int | None]]:
        return next(self._encode_many([words]))

    def _encode_many(self, word_lists: list[list[str]], chunk: int = 1024,
                     truncate: bool = False) -> Iterator[tuple[dict, list[int | None]]]:
        """(inputs, word ids) per word list, encoded as the text the words stand for (`joined`) encodes, a chunk
        of lists per tokenizer call: the Rust tokenizer batches a call (one call per sentence was a tenth of
        prediction's time), and a chunk bounds what it holds. `truncate`: cut at max_length (windows)."""
        if not self.words_alone:
            yield from self._encode_as_text([joined(words) for words in word_lists], chunk, truncate)
            return
        backend = self._truncating() if truncate else self.backend
        for start in range(0, len(word_lists), chunk):
            encodings = backend.encode_batch(word_lists[start:start + chunk], is_pretokenized=True,
                                             add_special_tokens=True)
            for encoding in encodings:
                yield self._inputs(encoding), encoding.word_ids

    def _encode_as_text(self, texts: list[tuple[str, list[int]]], chunk: int = 1024,
                        truncate: bool = False) -> Iterator[tuple[dict, list[int | None]]]:
        """(inputs, word ids) per (text, where each of its words ends): the text encoded, each token's word from
        its character offsets (`word_ids_by_offsets`)."""
        self._need_offsets()
        backend = self._truncating() if truncate else self.backend
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            for encoding, (text, ends) in zip(backend.encode_batch([text for text, _ in part], add_special_tokens=True),
                                              part):
                yield self._inputs(encoding), word_ids_by_offsets(encoding, text, ends)

    def _need_offsets(self) -> None:
        if not self.offsets:
            raise ConfigError("E201", f"{type(self.tokenizer).__name__} does not map its tokens back to characters "
                              "of the text (no offsets), so words cannot be found in raw text or aligned with their "
                              "subwords.", fix="use a tokenizer whose tokenizer.json gives offsets (every "
                              "`tokenizers` model and pre-tokenizer of the common encoders does).")

    def _truncating(self):
        """A copy of the Rust tokenizer that cuts inputs at max_length (special tokens kept), for windows."""
        if self._truncating_backend is None:
            from tokenizers import Tokenizer

            self._truncating_backend = Tokenizer.from_str(self.backend.to_str())
            self._truncating_backend.enable_truncation(self.max_length)
        return self._truncating_backend

    def _inputs(self, encoding) -> dict:
        """The model inputs (lists of ints) of one Rust-tokenizer encoding."""
        return {name: getattr(encoding, field) for name, field in self._fields}

    def _token_feature(self, inputs, word_ids, tags, example_index, owned: range, word_offset: int) -> Feature:
        labels, positions, previous = [], [], None
        for pos, w in enumerate(word_ids):
            if w is None:
                labels.append(IGNORE_INDEX)
                previous = None
                continue
            word = w + word_offset
            first = w != previous
            previous = w
            if word not in owned or tags is None:
                labels.append(IGNORE_INDEX)
            elif first:
                labels.append(self.label2id[tags[word]])
            elif self.label_all_subwords:
                tag = tags[word]
                labels.append(self.label2id.get("I-" + tag[2:], self.label2id[tag]) if tag.startswith("B-") else self.label2id[tag])
            else:
                labels.append(IGNORE_INDEX)
            if first and word in owned:
                positions.append((pos, word))
        return Feature(inputs, labels, example_index, positions)

    def encode_tokens(self, examples: list[TokenExample], stats: EncodingStats | None = None) -> list[Feature]:
        """Encode NER examples (tags may be absent for prediction: pass examples with empty tags).

        Each sentence's words are encoded as the text they stand for (one space between words) encodes, so a
        model trained on them sees raw text at prediction as it saw its training sentences (`words_encode_as_text`
        decides how). Each example's words are scored exactly once, in the window that owns them
        (`_plan_windows`); with `context_size`, the windows also take words of the sentences around it in its
        document (`documents`), labelled -100 (a document's words one space apart, as its sentences' are). The
        features come in the examples' order, the windows of an example consecutive.
        """
        stats = stats if stats is not None else EncodingStats()
        stats.context_size = self.context_size
        features: list[Feature] = []
        budget = self.max_length - self.n_special
        encoded = self._encode_many([ex.tokens for ex in examples if ex.tokens])
        groups = documents(examples) if self.context_size else [range(i, i + 1) for i in range(len(examples))]
        for group in groups:
            stats.documents += 1 if self.context_size else 0
            # Every sentence of the document encoded on its own first: its words (unk for words the tokenizer
            # drops), inputs, word ids and subwords per word.
            sentences = [self._sentence(examples[index], encoded, stats) for index in group]
            doc_words = [word for words, *_ in sentences for word in words]
            doc_lengths = [n for *_, lengths in sentences for n in lengths]
            slots: list = []  # per window: a Feature, or the word list to encode and how to label it
            first = 0
            for index, (words, inputs, word_ids, lengths) in zip(group, sentences):
                tags = examples[index].tags or None
                last = first + len(words)
                if not words:  # an empty sentence still gets a (special-tokens only) feature: nothing dropped
                    slots.append(self._token_feature(inputs, word_ids, tags, index, range(0), 0))
                    continue
                fits = len(word_ids) <= self.max_length
                windows = ([(first, first, last, last)] if fits and not self.context_size else
                           _plan_windows(doc_lengths, budget, (first, last), self.context_size))
                if not fits:
                    stats.truncated_words += sum(1 for n in lengths if n > budget)
                    stats.windowed_examples += 1
                    stats.windows += len(windows)
                for left, start, end, right in windows:
                    if fits and (left, right) == (first, last):  # the sentence alone: its own encoding
                        slots.append(self._token_feature(inputs, word_ids, tags, index, range(len(words)), 0))
                        continue
                    slots.append((doc_words[left:right], tags, index, range(start - first, end - first), left - first,
                                  sum(doc_lengths[left:right]), len(words)))
                first = last
            encoded_group = self._encode_slots(slots)
            if self.context_size:
                given = dict.fromkeys(group, 0)
                for feature in encoded_group:
                    given[feature.example_index] += feature.context
                stats.context_subwords.extend(given.values())
            features.extend(encoded_group)
        stats.features += len(features)
        return features

    def _sentence(self, example: TokenExample, encoded: Iterator, stats: EncodingStats):
        """(words, inputs, word ids, subwords per word) of one example, counted in `stats`."""
        stats.examples += 1
        if not example.tokens:
            inputs, word_ids = self._encode_words([])
            stats.subwords.append(len(word_ids))
            return [], inputs, word_ids, []
        words = example.tokens
        inputs, word_ids = next(encoded)
        dropped = set(range(len(words))) - set(word_ids)
        if dropped:
            # A word the tokenizer turns into nothing (U+200B, soft hyphen, control characters) would have
            # no position to carry its label: it could neither be trained nor scored. It becomes unk.
            unk = self.tokenizer.unk_token or "?"
            words = [unk if i in dropped else word for i, word in enumerate(words)]
            stats.unknown_words += len(dropped)
            inputs, word_ids = self._encode_words(words)
        stats.subwords.append(len(word_ids))
        return words, inputs, word_ids, word_lengths(word_ids, len(words))

    def _encode_slots(self, slots: list) -> list[Feature]:
        """The features of one document's windows, those still to encode in one batch.

        A slot's subword count is the sum of its words' counts in their own sentences. Where words are encoded as
        their joined text (`words_alone` False: byte-level BPE), a word that began its sentence may take another
        count after a space, so a window that comes out longer than max_length gives up its outermost context
        word, one at a time, until it fits. A window of one word longer than a whole window is cut (as without
        context)."""
        pending = [i for i, slot in enumerate(slots) if not isinstance(slot, Feature)]
        fitting = [i for i in pending if slots[i][5] + self.n_special <= self.max_length]
        too_long = [i for i in pending if slots[i][5] + self.n_special > self.max_length]
        encoded = dict(zip(fitting, self._encode_many([slots[i][0] for i in fitting])))
        encoded.update(zip(too_long, self._encode_many([slots[i][0] for i in too_long], truncate=True)))
        features = []
        for i, slot in enumerate(slots):
            if isinstance(slot, Feature):
                features.append(slot)
                continue
            words, tags, index, owned, offset, _, n_words = slot
            inputs, word_ids = encoded[i]
            while len(inputs["input_ids"]) > self.max_length:
                before, after = owned.start - offset, len(words) - (owned.stop - offset)
                if not before and not after:
                    inputs, word_ids = next(self._encode_many([words], truncate=True))
                    break
                if after >= before:
                    words = words[:-1]
                else:
                    words, offset = words[1:], offset + 1
                inputs, word_ids = self._encode_words(words)
            feature = self._token_feature(inputs, word_ids, tags, index, owned, offset)
            # subwords of other sentences: the words before the sentence's first and after its last
            feature.context = sum(1 for w in word_ids if w is not None and not 0 <= w + offset < n_words)
            features.append(feature)
        return features

    # ---- text classification --------------------------------------------------------------------------
    def encode_texts(self, examples: list[TextExample], stats: EncodingStats | None = None, labelled: bool = True) -> list[Feature]:
        stats = stats if stats is not None else EncodingStats()
        texts = [ex.text for ex in examples]
        pairs = [ex.text_pair for ex in examples]
        has_pairs = any(p is not None for p in pairs)
        full = self.tokenizer(texts, pairs if has_pairs else None, truncation=False, add_special_tokens=True)
        enc = self.tokenizer(texts, pairs if has_pairs else None, truncation=True, max_length=self.max_length)
        features = []
        for i, ex in enumerate(examples):
            n_full = len(full["input_ids"][i])
            stats.examples += 1
            stats.subwords.append(n_full)
            if n_full > self.max_length:
                stats.truncated_examples += 1
            inputs = {k: list(enc[k][i]) for k in self.input_names if k in enc}
            if not labelled:
                label = IGNORE_INDEX
            elif ex.labels is not None:  # multi-label: one 0.0/1.0 target per label (BCE takes float targets)
                label = [0.0] * len(self.label2id)
                for name in ex.labels:
                    label[self.label2id[name]] = 1.0
            else:
                label = self.label2id[ex.label]
            features.append(Feature(inputs, label, i))
        stats.features += len(features)
        return features
