"""Row-sparse word-embedding gradients take the dense path's AdamW steps, and are used only where they do."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import WNUT_SAMPLE
from safetensors.torch import load_file

from tunecard.config import build_config
from tunecard.pipeline import train
from tunecard.speed.sparse_embedding import ROW_OF_SLOT, SparseRowsAdamW, clip_grad_norm_, set_sparse


def _pair(vocab: int = 60, width: int = 8):
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Embedding(vocab, width), torch.nn.Linear(width, 3))
    sparse = copy.deepcopy(dense)
    sparse[0].sparse = True
    return dense, sparse


@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipping every step, and never
def test_sparse_rows_take_the_dense_adamw_steps(max_norm):
    dense, sparse = _pair()
    dense_optimizer = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    sparse_optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    generator = torch.Generator().manual_seed(1)
    for step in range(40):
        ids = torch.randint(0, 20 if step < 20 else 40, (4, 7), generator=generator)  # rows 40+ never read
        norms = []
        for model, optimizer, clip in ((dense, dense_optimizer, torch.nn.utils.clip_grad_norm_),
                                       (sparse, sparse_optimizer, clip_grad_norm_)):
            (model(ids) ** 2).mean().backward()
            norms.append(clip(model.parameters(), max_norm))
            optimizer.step()
            optimizer.zero_grad()
        torch.testing.assert_close(norms[1], norms[0], rtol=1e-6, atol=0)
    # The norm sums the same squares in another order (dense gradients and the rows' values apart), and the fused
    # kernel's vector width splits the rows' elements between its vector body and scalar tail differently from
    # the dense tensor's: on an AVX2-only CPU one parameter of 480 ended 1.8e-7 apart.
    for dense_param, sparse_param in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(sparse_param, dense_param, rtol=1e-6, atol=1e-6)
    assert torch.equal(sparse[0].weight[40:], dense[0].weight[40:])
    row_of_slot = sparse_optimizer.state[sparse[0].weight][ROW_OF_SLOT]
    assert sorted(row_of_slot[row_of_slot >= 0].long().tolist()) == list(range(40))  # each read row once



def test_packed_rows_follow_weights_written_between_steps_and_grow():
    """The packed weight rows kept between steps are gathered again when something else writes the weight (here
    the model's weights loaded in place, as when best weights are restored), and their buffers grow past their
    first size as more rows are read (3000 rows here, the first room is for 1024)."""
    dense, sparse = _pair(vocab=3000, width=4)
    dense_optimizer = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    sparse_optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    generator = torch.Generator().manual_seed(3)
    for step in range(30):
        ids = torch.randint(0, 100 * (step + 1), (8, 40), generator=generator)
        for model, optimizer in ((dense, dense_optimizer), (sparse, sparse_optimizer)):
            (model(ids) ** 2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        if step == 10:
            written = dense.state_dict()["0.weight"] * 0.5
            for model in (dense, sparse):
                model.load_state_dict({**model.state_dict(), "0.weight": written})
    for dense_param, sparse_param in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(sparse_param, dense_param, rtol=1e-6, atol=1e-6)
    assert len(_touched(sparse_optimizer.state[sparse[0].weight])) > 1536

class _Embedded(torch.nn.Module):
    """An input embedding and a head, found by `set_sparse` as a transformers model's is."""

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embedding, self.head = torch.nn.Embedding(vocab, width), torch.nn.Linear(width, 3)

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, ids):
        return self.head(self.embedding(ids))


def test_rows_are_written_into_the_weight_when_read():
    """With `set_sparse`'s hooks the optimizer leaves the embedding weight behind its packed rows; a forward pass
    first writes the rows it reads, a state dict every row, and weights written in between win over the lag."""
    torch.manual_seed(0)
    dense = _Embedded(500, 8)
    sparse = copy.deepcopy(dense)
    set_sparse(sparse, True)
    dense_optimizer = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    sparse_optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0, fused=True)
    generator = torch.Generator().manual_seed(1)
    lagged = 0
    for step in range(40):
        ids = torch.randint(0, 500, (4, 9), generator=generator)
        outputs = []
        for model, optimizer in ((dense, dense_optimizer), (sparse, sparse_optimizer)):
            output = model(ids)
            outputs.append(output.detach())
            (output ** 2).mean().backward()
            clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            optimizer.zero_grad()
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-6, atol=1e-6)
        lagged = max(lagged, int((sparse.embedding.weight != dense.embedding.weight).any(1).sum()))
        if step == 20:  # weights written in place while lagging (no state dict taken first)
            written = dense.embedding.weight.detach() * 0.5
            with torch.no_grad():
                for model in (dense, sparse):
                    model.embedding.weight.copy_(written)
    assert lagged > 100, "rows updated but not read stay behind in the weight itself"
    for name, tensor in dense.state_dict().items():
        torch.testing.assert_close(sparse.state_dict()[name], tensor, rtol=1e-6, atol=1e-6, msg=name)
    for model, optimizer in ((dense, dense_optimizer), (sparse, sparse_optimizer)):  # lagging again ...
        (model(ids) ** 2).mean().backward()
        clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    set_sparse(sparse, False)  # ... until made dense
    assert not sparse.embedding.sparse and not sparse.embedding._forward_pre_hooks
    torch.testing.assert_close(sparse.embedding.weight, dense.embedding.weight, rtol=1e-6, atol=1e-6)


def _touched(state: dict) -> list[int]:
    return state[ROW_OF_SLOT][state[ROW_OF_SLOT] >= 0].long().tolist()  # in the order first read


def test_the_optimizer_state_survives_a_save_and_load():
    _, sparse = _pair()
    optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0)
    (sparse(torch.tensor([[5, 2, 2, 1]])) ** 2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
    restored = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0)
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    state = restored.state[sparse[0].weight]
    assert _touched(state) == [1, 2, 5]
    assert torch.equal(state["exp_avg"], optimizer.state[sparse[0].weight]["exp_avg"])
    (sparse(torch.tensor([[5, 7]])) ** 2).mean().backward()
    restored.step()  # goes on from the loaded moments and touched rows
    assert _touched(state) == [1, 2, 5, 7]
    assert int(state["step"]) == 2


def test_a_checkpoint_with_moments_in_row_order_goes_on_with_the_dense_steps():
    """Checkpoints written before the moments were packed (a 0/1 flag per row, moments in row order) still resume."""
    dense, sparse = _pair()
    dense_optimizer = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.0)
    sparse_optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0)
    batches = [torch.tensor([[9, 3, 3]]), torch.tensor([[3, 12, 1]]), torch.tensor([[12, 30]]), torch.tensor([[1, 4]])]

    def step(ids):
        for model, optimizer, clip in ((dense, dense_optimizer, torch.nn.utils.clip_grad_norm_),
                                       (sparse, sparse_optimizer, clip_grad_norm_)):
            (model(ids) ** 2).mean().backward()
            clip(model.parameters(), 0.5)
            optimizer.step()
            optimizer.zero_grad()

    for ids in batches[:2]:
        step(ids)
    saved = copy.deepcopy(sparse_optimizer.state_dict())
    old = saved["state"][0]  # the embedding weight's state, rewritten as the earlier code kept it
    rows = old.pop(ROW_OF_SLOT)
    rows = rows[rows >= 0].long()
    old["rows_touched"] = torch.zeros(len(old["exp_avg"]))
    old["rows_touched"][rows] = 1.0
    for key in ("exp_avg", "exp_avg_sq"):
        in_row_order = torch.zeros_like(old[key])
        in_row_order[rows] = old[key][:len(rows)]
        old[key] = in_row_order
    sparse_optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.0)
    sparse_optimizer.load_state_dict(saved)
    assert sorted(_touched(sparse_optimizer.state[sparse[0].weight])) == [1, 3, 9, 12]
    for ids in batches[2:]:
        step(ids)
    for dense_param, sparse_param in zip(dense.parameters(), sparse.parameters()):
        torch.testing.assert_close(sparse_param, dense_param, rtol=1e-6, atol=1e-7)


def test_weight_decay_is_refused_on_sparse_rows():
    _, sparse = _pair()
    optimizer = SparseRowsAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.01)
    (sparse(torch.tensor([[1, 2]])) ** 2).mean().backward()
    with pytest.raises(ValueError, match="weight decay"):
        optimizer.step()


def _run(model: Path, output: Path, **overrides):
    values = dict(task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"), output=str(output),
                  validation=str(WNUT_SAMPLE / "dev.conll"), num_epochs=2, max_train_examples=64,
                  max_eval_examples=32, train_batch_size=16, learning_rate=1e-3, precision="fp32", **overrides)
    return train(build_config(None, values), progress=False)


def test_training_with_sparse_rows_takes_the_dense_steps(tiny_bert_cased, tmp_path):
    sparse = _run(tiny_bert_cased, tmp_path / "sparse")
    dense = _run(tiny_bert_cased, tmp_path / "dense", speed_options={"sparse_embedding": False})
    decayed = _run(tiny_bert_cased, tmp_path / "decayed", weight_decay=0.01)
    assert sparse.metrics["speed"]["levers"]["sparse_embedding"]["used"]
    assert not dense.metrics["speed"]["levers"]["sparse_embedding"]["used"]
    assert not decayed.metrics["speed"]["levers"]["sparse_embedding"]["used"]  # rows never read would shrink
    sparse_losses = [step["loss"] for step in sparse.history["steps"]]
    dense_losses = [step["loss"] for step in dense.history["steps"]]
    assert len(sparse_losses) == len(dense_losses) == 8
    assert sparse_losses == pytest.approx(dense_losses, abs=1e-5)
    sparse_weights = load_file(sparse.output / "model.safetensors")
    dense_weights = load_file(dense.output / "model.safetensors")
    for name, tensor in dense_weights.items():
        torch.testing.assert_close(sparse_weights[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    assert sparse.metrics["validation"]["f1"] == pytest.approx(dense.metrics["validation"]["f1"], abs=1e-6)
    assert "  - sparse_embedding: used (row-sparse word-embedding gradient" in (sparse.output / "README.md").read_text()
    assert "Word-embedding gradient" not in (dense.output / "README.md").read_text()
