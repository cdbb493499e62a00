"""NER tags from per-word scores: each word's best tag, or the best tag sequence IOB2 allows.

`argmax` (the default) takes each word's most likely tag on its own, as `transformers.pipeline` does: a sentence
can come out as `O I-ORG`, which scoring reads by the conlleval rule (the I-ORG starts an entity). `constrained`
takes the most likely sequence among those IOB2 allows (no I-X first, none after O or after another type), by
Viterbi over the words' log-probabilities: a softmax tagger's CRF-free decoding with a CRF's transition rules,
where every allowed transition costs nothing and every other is impossible.

Written by hand: the decoding is a dozen tensor operations over a batch of sentences, and the libraries that
have one (pytorch-crf, AllenNLP's `allowed_transitions`) come with a CRF layer to train and are not maintained.
"""

from __future__ import annotations

import torch

from tunecard.metrics.entities import breaks_iob2

DECODINGS = ("argmax", "constrained")


def iob2_rules(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, transition): 0 where a tag may open a sentence / follow another tag, -inf where IOB2 forbids it:
    the sequences `entities.breaks_iob2` calls invalid, the ones the scorer counts in `invalid_sentences`.

    `labels[i]` is label id i. Raises ValueError for a label that is neither O nor B-X / I-X."""
    for label in labels:
        if label != "O" and label[:2] not in ("B-", "I-"):
            raise ValueError(f"label {label!r} is not IOB2 (O, B-X or I-X)")
    forbidden = float("-inf")
    first = torch.tensor([forbidden if breaks_iob2([label]) else 0.0 for label in labels])
    # what may follow B-X may follow I-X: the pair is judged after the B- of the previous tag's type
    opened = ["O" if label == "O" else "B-" + label[2:] for label in labels]
    transition = torch.tensor([[forbidden if breaks_iob2([previous, label]) else 0.0 for label in labels]
                               for previous in opened])  # [previous, next]
    return first, transition


class TagDecoder:
    """Constrained decoding for a model's labels (id -> IOB2 tag)."""

    def __init__(self, id2label: dict[int, str]):
        self.first, self.transition = iob2_rules([id2label[i] for i in range(len(id2label))])

    def decode(self, scores: list[torch.Tensor], continues: list[bool] | None = None) -> list[list[int]]:
        """The best allowed label ids for each sentence.

        Args:
            scores: one [words, labels] tensor of logits per sentence (or window); any may be empty.
            continues: per sentence, True when its words continue a sequence decoded elsewhere (the later window
                of a long sentence): its first word may then be I-X.
        """
        lengths = [len(s) for s in scores]
        decoded: list[list[int]] = [[] for _ in scores]
        rows = [i for i, length in enumerate(lengths) if length]
        if not rows:
            return decoded
        steps = max(lengths[i] for i in rows)
        n = self.transition.shape[0]
        logits = torch.zeros(len(rows), steps, n)  # padding past a sentence's end is never read (`live` below)
        for k, i in enumerate(rows):
            logits[k, :lengths[i]] = scores[i].float().cpu()
        logp = torch.log_softmax(logits, dim=-1)
        length = torch.tensor([lengths[i] for i in rows])
        free = torch.tensor([bool(continues and continues[i]) for i in rows])
        best = logp[:, 0] + torch.where(free[:, None], torch.zeros(n), self.first)
        keep = torch.arange(n).expand(len(rows), n)
        back = []
        for t in range(1, steps):
            candidates = best[:, :, None] + self.transition  # [rows, previous, next]
            score, previous = candidates.max(dim=1)
            live = (t < length)[:, None]
            best = torch.where(live, score + logp[:, t], best)  # a finished sentence keeps its scores
            back.append(torch.where(live, previous, keep))  # ... and points each tag at itself
        path = [best.argmax(dim=-1)]
        for pointers in reversed(back):
            path.append(pointers.gather(1, path[-1][:, None]).squeeze(1))
        ids = torch.stack(path[::-1], dim=1).tolist()
        for k, i in enumerate(rows):
            decoded[i] = ids[k][:lengths[i]]
        return decoded
