"""Row-sparse word-embedding gradients on CPU: the same AdamW steps without touching the whole vocabulary.

A batch of 16 sentences reads a few hundred rows of the 30522 x 384 word-embedding matrix (half of MiniLM's
parameters), yet a dense gradient makes every step allocate and zero that matrix, take its norm, scale it and
run AdamW over all of it: a sixth of a packed CPU step (docs/performance.md). With `nn.Embedding(sparse=True)`
autograd returns only the rows read. torch's AdamW and `clip_grad_norm_` refuse sparse gradients, so this module
adds the two pieces no library has:

- `SparseRowsAdamW` updates the rows the embedding has ever received a gradient for, with AdamW's own fused
  kernel on those rows. A row never read has zero moments, and dense AdamW leaves it unchanged when weight decay
  is 0, so skipping it changes nothing (with decay it would shrink: `applies` then keeps the dense path).
  The moments of the touched rows are kept packed at the front of their tensors, in the order the rows were
  first read, so the kernel updates them in place: only the weight rows are gathered and written back (the
  moments' gathers and write-backs took two thirds of the sparse step's time, docs/performance.md).
- `clip_grad_norm_` takes the norm over the dense gradients and the sparse rows' values, and scales both.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.adamw import adamw

# Optimizer state: the embedding row whose moments sit at each slot of exp_avg / exp_avg_sq (-1: free), slots
# filled from the front. Stored as a float tensor of the weight's dtype (exact for row numbers below 2**24),
# because torch's load_state_dict casts every state tensor but "step" to the parameter's dtype.
ROW_OF_SLOT = "row_of_slot"
OLD_TOUCHED = "rows_touched"  # checkpoints from before the packing: 1.0 per touched row, moments in row order


def input_embedding(model: nn.Module) -> nn.Embedding | None:
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return embedding if type(embedding) is nn.Embedding else None


def applies(model: nn.Module, *, weight_decay: float, max_grad_norm: float, optimizer: str, processes: int,
            cpu: bool) -> bool:
    """Whether the sparse path gives the dense path's steps here: one CPU process, AdamW without weight decay,
    clipping on (the Trainer skips `_clip_grad_norm` otherwise and would meet a sparse gradient), and a plain
    nn.Embedding as the input embedding."""
    embedding = input_embedding(model)
    return (embedding is not None and cpu and processes == 1 and embedding.weight.dtype == torch.float32
            and embedding.num_embeddings < 2**24 and optimizer == "adamw" and weight_decay == 0 and max_grad_norm > 0)


def set_sparse(model: nn.Module, sparse: bool) -> None:
    embedding = input_embedding(model)
    if embedding is not None:
        embedding.sparse = sparse


class SparseRowsAdamW(torch.optim.AdamW):
    """torch's AdamW for dense gradients; sparse (COO) gradients update only rows that have ever had one."""

    def defer_dense_scaling(self, factor: torch.Tensor) -> None:
        """Scale the dense gradients by `factor` inside the next fused step instead of in a pass of their own.

        torch's fused AdamW divides every gradient by `grad_scale` as it reads it (the hook torch's GradScaler
        uses to unscale); clipping hands its factor over here, which saves a read and a write of every dense
        gradient per step. A factor of 1 (no clipping) divides by exactly 1.
        """
        if not self.defaults["fused"]:
            raise ValueError("deferred scaling needs the fused AdamW kernel")
        self._dense_scale = (1.0 / factor).to(torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        sparse = [(group, p) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        grads = [p.grad for _, p in sparse]
        for _, p in sparse:
            p.grad = None  # AdamW skips a parameter without a gradient
        self.grad_scale = getattr(self, "_dense_scale", None)  # read by AdamW.step, for the fused kernel
        try:
            loss = super().step(closure)
        finally:
            self.grad_scale = self._dense_scale = None
        for (group, p), grad in zip(sparse, grads):
            p.grad = grad
            self._step_rows(group, p, grad.coalesce())
        return loss

    def _step_rows(self, group: dict, p: torch.Tensor, grad: torch.Tensor) -> None:
        if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
            raise ValueError("sparse gradients: only AdamW without weight decay, amsgrad or maximize is exact")
        if p.dtype != torch.float32:
            raise ValueError("sparse gradients: the embedding weight must be float32 (row numbers are kept as floats)")
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state[ROW_OF_SLOT] = torch.full((p.shape[0],), -1.0, dtype=p.dtype, device=p.device)
        row_of_slot = state[ROW_OF_SLOT]
        used = int((row_of_slot >= 0).sum())
        slot_of_row = torch.full((p.shape[0],), -1, dtype=torch.long, device=p.device)
        slot_of_row[row_of_slot[:used].long()] = torch.arange(used, device=p.device)
        grad_rows = grad.indices()[0]
        grad_slots = slot_of_row[grad_rows]
        new = grad_slots < 0
        added = int(new.sum())
        if added:  # rows read for the first time take the next free slots (their moments there are zero)
            grad_slots[new] = torch.arange(used, used + added, device=p.device)
            row_of_slot[used:used + added] = grad_rows[new].to(row_of_slot.dtype)
            used += added
        rows = row_of_slot[:used].long()
        row_grad = torch.zeros(used, *p.shape[1:], dtype=p.dtype, device=p.device)
        row_grad.index_copy_(0, grad_slots, grad.values())
        row_param = p.index_select(0, rows)
        beta1, beta2 = group["betas"]
        adamw([row_param], [row_grad], [state["exp_avg"][:used]], [state["exp_avg_sq"][:used]], [], [state["step"]],
              fused=group["fused"], foreach=group["foreach"], amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
              weight_decay=0.0, eps=group["eps"], maximize=False)  # the moments' slices are updated in place
        p.index_copy_(0, rows, row_param)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for state in self.state.values():
            if OLD_TOUCHED in state:  # moments saved in row order: pack the touched rows to the front
                touched = state.pop(OLD_TOUCHED)
                rows = touched.nonzero().squeeze(1)
                state[ROW_OF_SLOT] = torch.full_like(touched, -1.0)
                state[ROW_OF_SLOT][:len(rows)] = rows.to(touched.dtype)
                for key in ("exp_avg", "exp_avg_sq"):
                    packed = torch.zeros_like(state[key])
                    packed[:len(rows)] = state[key].index_select(0, rows)
                    state[key] = packed


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float,
                    optimizer: SparseRowsAdamW | None = None) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (L2) where some gradients are sparse: their values are the nonzero part.

    With `optimizer` (fused), the dense gradients are scaled inside its next step (`defer_dense_scaling`).
    """
    dense, sparse = [], []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()  # duplicate rows summed, so the values are the gradient's entries
            sparse.append(p.grad.values())  # a view of the coalesced tensor's values: scaling it scales the gradient
        else:
            dense.append(p.grad)
    total = torch.nn.utils.get_total_norm(dense + sparse, 2.0)
    factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as torch computes it
    if optimizer is not None:
        optimizer.defer_dense_scaling(factor)
    for tensor in sparse if optimizer is not None else dense + sparse:
        tensor.mul_(factor)
    return total
