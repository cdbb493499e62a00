"""Encode read examples for a model: tokenizers and models loaded, words to subwords, windows, batches."""
