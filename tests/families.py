"""Tiny random encoders of every common family, built offline: a few layers of width 32, dropout 0, and a real
tokenizer of the family's kind (WordPiece from ../shared/vocab; byte-level BPE and unigram trained here with the
`tokenizers` library on the WNUT-17 sample), saved with save_pretrained as a hub folder would hold them.

Each tokenizer is built the way its hub model ships it (transformers' own tokenizer class of the family; ModernBERT
as a plain tokenizer.json like answerdotai/ModernBERT-base), so the encoder sees each family's real word handling:
BERT's punctuation splitting, RoBERTa's and ModernBERT's space-marked byte-level words, SentencePiece's ▁.
"""

from __future__ import annotations

from pathlib import Path

from conftest import SHARED, WNUT_SAMPLE as SAMPLE

VOCAB = SHARED / "vocab" / "bert-base-cased" / "vocab.txt"
FAMILIES = ("bert", "distilbert", "electra", "roberta", "xlm-roberta", "deberta-v2", "modernbert")
# Families the code was not written against, built here for tests/test_held_out_families.py (not the matrix):
# MPNet (positions after the padding index, relative attention bias), ConvBERT (a convolution across positions),
# Funnel (pooling over positions), Longformer (local attention that edits its projections in place).
HELD_OUT = ("mpnet", "convbert", "funnel", "longformer")
HIDDEN, LAYERS, HEADS, FFN = 32, 2, 2, 64
POSITIONS = 128
# Texts the tokenizers are trained on beside the sample: accents and punctuation, so they get subwords of them.
EXTRA_TEXT = ["Dr. Müller (ETH Zürich) met O'Neil at 9:30am, then left — quickly!!",
              "naïve café déjà-vu in São Paulo; Łódź, Besançon & Malmö.", "Don't stop: it's 3.5% of $20!"]


def training_sentences() -> list[str]:
    sentences, words = [], []
    for line in (SAMPLE / "train.conll").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split("\t")[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    return sentences + EXTRA_TEXT * 20


def _bpe(special: list[str], vocab_size: int = 800):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(training_sentences(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return backend


def _unigram(special: list[str], unk: str, vocab_size: int = 800) -> list[tuple[str, float]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.train_from_iterator(training_sentences(), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=special, unk_token=unk, show_progress=False))
    return [(piece, 0.0 if piece in special else score)
            for piece, score in json.loads(backend.to_str())["model"]["vocab"]]


def _wordpiece_vocab(extra: list[str]) -> dict[str, int]:
    """../shared/vocab's WordPiece vocabulary with the special tokens a family names otherwise (<s>, <pad>...)."""
    vocab = {word: index for index, word in enumerate(VOCAB.read_text(encoding="utf-8").splitlines())}
    for token in extra:
        vocab.setdefault(token, len(vocab))
    return vocab


def build_tokenizer(family: str):
    """The family's tokenizer, as its hub models ship it."""
    import transformers

    if family == "mpnet":
        return transformers.MPNetTokenizer(vocab=_wordpiece_vocab(["<s>", "</s>", "<pad>", "<mask>"]),
                                           do_lower_case=False, model_max_length=POSITIONS)
    if family == "convbert":
        return transformers.ConvBertTokenizer(vocab=str(VOCAB), do_lower_case=False, model_max_length=POSITIONS)
    if family == "funnel":
        return transformers.FunnelTokenizer(
            vocab=_wordpiece_vocab(["<unk>", "<sep>", "<pad>", "<cls>", "<mask>", "<s>", "</s>"]), do_lower_case=False,
            model_max_length=POSITIONS)

    if family in ("bert", "distilbert", "electra"):
        cls = {"bert": transformers.BertTokenizer, "distilbert": transformers.DistilBertTokenizer,
               "electra": transformers.ElectraTokenizer}[family]
        return cls(vocab=str(VOCAB), do_lower_case=False, model_max_length=POSITIONS)
    if family in ("roberta", "longformer"):
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        model = _bpe(special)
        vocab = model.get_vocab()
        import json

        merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" "))
                  for pair in json.loads(model.to_str())["model"]["merges"]]
        cls = transformers.RobertaTokenizer if family == "roberta" else transformers.LongformerTokenizer
        return cls(vocab=vocab, merges=merges, model_max_length=POSITIONS)
    if family == "xlm-roberta":
        return transformers.XLMRobertaTokenizer(vocab=_unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<unk>"),
                                                model_max_length=POSITIONS)
    if family == "deberta-v2":
        return transformers.DebertaV2Tokenizer(vocab=_unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[UNK]"),
                                               model_max_length=POSITIONS)
    if family == "modernbert":
        from tokenizers import processors

        special = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        backend = _bpe(special)
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))])
        return transformers.PreTrainedTokenizerFast(
            tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
            mask_token="[MASK]", model_max_length=POSITIONS, model_input_names=["input_ids", "attention_mask"])
    raise ValueError(family)


def build_config(family: str, tokenizer):
    """A tiny config of the family with every dropout at 0 (speed auto and off then compute the same losses)."""
    import transformers

    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=FFN, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  pad_token_id=tokenizer.pad_token_id)
    if family == "bert":
        return transformers.BertConfig(**common, max_position_embeddings=POSITIONS)
    if family == "electra":
        return transformers.ElectraConfig(**common, embedding_size=16, max_position_embeddings=POSITIONS)
    if family == "distilbert":
        return transformers.DistilBertConfig(vocab_size=vocab, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS,
                                             hidden_dim=FFN, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0,
                                             max_position_embeddings=POSITIONS, pad_token_id=tokenizer.pad_token_id)
    if family in ("roberta", "xlm-roberta"):
        cls = transformers.RobertaConfig if family == "roberta" else transformers.XLMRobertaConfig
        # positions start after the padding index: 2 more than the tokenizer's limit, as on the hub
        return cls(**common, max_position_embeddings=POSITIONS + 2, type_vocab_size=1,
                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if family == "deberta-v2":  # DeBERTa-v3's settings: relative attention only, no absolute positions
        return transformers.DebertaV2Config(**common, max_position_embeddings=POSITIONS, type_vocab_size=0,
                                            relative_attention=True, position_buckets=32, max_relative_positions=-1,
                                            pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                            norm_rel_ebd="layer_norm", share_att_key=True)
    if family == "mpnet":  # positions counted after the padding index (its padding_idx is 1), as RoBERTa's
        return transformers.MPNetConfig(**common, max_position_embeddings=POSITIONS + 2)
    if family == "convbert":
        return transformers.ConvBertConfig(**common, embedding_size=HIDDEN, conv_kernel_size=3, head_ratio=2,
                                           max_position_embeddings=POSITIONS)
    if family == "funnel":
        return transformers.FunnelConfig(vocab_size=vocab, d_model=HIDDEN, n_head=HEADS, d_head=16, d_inner=FFN,
                                         block_sizes=[1, 1], block_repeats=[1, 1], num_decoder_layers=1,
                                         hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                                         max_position_embeddings=POSITIONS, pad_token_id=tokenizer.pad_token_id)
    if family == "longformer":  # a local window narrower than the test sentences
        return transformers.LongformerConfig(**common, max_position_embeddings=POSITIONS + 2, type_vocab_size=1,
                                             attention_window=[8] * LAYERS, bos_token_id=tokenizer.bos_token_id,
                                             eos_token_id=tokenizer.eos_token_id, sep_token_id=tokenizer.sep_token_id)
    if family == "modernbert":  # local attention narrower than the test sentences, so the sliding window matters
        return transformers.ModernBertConfig(
            vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=3, num_attention_heads=HEADS,
            intermediate_size=FFN, max_position_embeddings=POSITIONS, global_attn_every_n_layers=3,
            local_attention=8, attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0, classifier_dropout=0.0,
            pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id)
    raise ValueError(family)


def build_family(family: str, folder: Path) -> Path:
    """A save_pretrained folder (safetensors) holding a tiny random base model of `family` and its tokenizer."""
    import torch
    import transformers

    torch.manual_seed(0)
    tokenizer = build_tokenizer(family)
    config = build_config(family, tokenizer)
    # Funnel's config maps to two base classes (FunnelModel, FunnelBaseModel): AutoModel needs it named
    model = transformers.FunnelModel(config) if family == "funnel" else transformers.AutoModel.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
