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
  first read, so the kernel updates them in place (the moments' gathers and write-backs took two thirds of the
  sparse step's time, docs/performance.md). The weight rows and their gradients are kept packed the same way
  between steps (`_PackedRows`): a step gathers only the rows read for the first time, instead of gathering
  every touched row and zeroing a fresh gradient for all of them. Every touched row moves at every step (its
  moments are not zero), but few are read before they move again, so with `set_sparse`'s hooks the weight is
  written only where it is read: a forward pass first writes the rows of its token ids, a state dict (checkpoint,
  best weights) and `set_sparse(model, False)` every row. Writing all touched rows back after each step took
  1.6 ms of an SST-2 step at 6,000 touched rows, and grows with them. Between steps the weight tensor itself
  lags: read it through a forward pass or a state dict.
- `clip_grad_norm_` takes the norm over the dense gradients and the sparse rows' values, and scales both.

Measured gain (docs/performance.md): 220.6 against 264.0 ms a packed step (1.20x, 12 of 12 interleaved
rounds, AMX Xeon); whole 3000-sentence runs faster in both alternating pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.adamw import adamw
from torch.utils.weak import WeakTensorKeyDictionary

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


# Embedding weights whose module reads its rows through `_PackedRows` (set_sparse's hooks): the optimizer may then
# leave the weight behind its packed rows, and `_LAGGING` holds the packed rows it is behind.
_READ_THROUGH = WeakTensorKeyDictionary()
_LAGGING = WeakTensorKeyDictionary()
_HOOKS = "_tunecard_sparse_hooks"


def set_sparse(model: nn.Module, sparse: bool) -> None:
    """Make the input embedding's gradient row-sparse (or dense again), with the hooks that let `SparseRowsAdamW`
    write the updated rows into the weight only when they are read: before a forward pass, the rows it reads;
    before a state dict is taken (checkpoints, best weights), and when made dense again, every row."""
    embedding = input_embedding(model)
    if embedding is None:
        return
    embedding.sparse = sparse
    for handle in getattr(embedding, _HOOKS, ()):
        handle.remove()
    setattr(embedding, _HOOKS, ())
    catch_up(embedding.weight)
    _READ_THROUGH.pop(embedding.weight, None)
    if sparse:
        setattr(embedding, _HOOKS, (embedding.register_forward_pre_hook(_rows_read_up_to_date),
                                    embedding.register_state_dict_pre_hook(_weight_up_to_date)))
        _READ_THROUGH[embedding.weight] = True


def catch_up(weight: torch.Tensor, ids: torch.Tensor | None = None) -> None:
    """Write the packed rows `weight` lags behind into it: those of `ids`, or all of them."""
    packed = _LAGGING.get(weight)
    if packed is None:
        return
    if weight._version != packed.version:  # written by something else since (weights loaded): that write wins
        del _LAGGING[weight]
        return
    with torch.no_grad():
        if ids is None:
            packed.write_back(weight)
            del _LAGGING[weight]
        else:
            packed.write_rows(weight, ids)


def _rows_read_up_to_date(module: nn.Embedding, args) -> None:
    catch_up(module.weight, args[0])


def _weight_up_to_date(module: nn.Embedding, prefix: str, keep_vars: bool) -> None:
    catch_up(module.weight)


class SparseRowsAdamW(torch.optim.AdamW):
    """torch's AdamW for dense gradients; sparse (COO) gradients update only rows that have ever had one."""

    @torch.no_grad()
    def step(self, closure=None):
        sparse = [(group, p) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        grads = [p.grad for _, p in sparse]
        for _, p in sparse:
            p.grad = None  # AdamW skips a parameter without a gradient
        loss = super().step(closure)
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
        packed = self._packed_rows(p, state[ROW_OF_SLOT])
        row_param, row_grad = packed.take_step(p, grad)
        beta1, beta2 = group["betas"]
        adamw([row_param], [row_grad], [state["exp_avg"][:packed.used]], [state["exp_avg_sq"][:packed.used]], [],
              [state["step"]], fused=group["fused"], foreach=group["foreach"], amsgrad=False, beta1=beta1,
              beta2=beta2, lr=group["lr"], weight_decay=0.0, eps=group["eps"], maximize=False)  # moments in place
        if p in _READ_THROUGH:  # written when read (set_sparse's hooks): few rows are read before they change again
            packed.left_behind(p)
            _LAGGING[p] = packed
        else:
            packed.write_back(p)

    def _packed_rows(self, p: torch.Tensor, row_of_slot: torch.Tensor) -> "_PackedRows":
        """This weight's packed rows, gathered again when the weight or the slots changed outside the steps
        (weights loaded into the model, a resumed optimizer state)."""
        cache = self.__dict__.setdefault("_packed", {})  # not optimizer state: rebuilt from it when needed
        packed = cache.get(p)
        if packed is None or not packed.matches(p, row_of_slot):
            packed = cache[p] = _PackedRows(p, row_of_slot)
        return packed

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


class _PackedRows:
    """The touched rows of an embedding weight and of its gradient, packed in slot order between steps.

    Written by hand for the same reason as the optimizer: a step's gradient covers a few hundred rows, the rows
    AdamW updates are every row ever read (thousands). Kept from step to step, the packed weight rows need
    gathering only when first read, and the packed gradient needs zeroing only where the last step wrote it.
    The weight's version counter says whether anything else wrote into it since the last write-back.
    """

    def __init__(self, p: torch.Tensor, row_of_slot: torch.Tensor):
        self.row_of_slot = row_of_slot
        used = int((row_of_slot >= 0).sum())
        rows = row_of_slot[:used].long()
        self.slot_of_row = torch.full((p.shape[0],), -1, dtype=torch.long, device=p.device)
        self.slot_of_row[rows] = torch.arange(used, device=p.device)
        self.used = 0  # nothing to carry over into the first buffers
        self.params, self.grads = p.new_empty(0, *p.shape[1:]), p.new_zeros(0, *p.shape[1:])
        self._reserve(p, used)
        self.used = used
        torch.index_select(p, 0, rows, out=self.params[:used])
        self.last_slots = None  # the gradient's slots written by the last step, zeroed before the next
        self.version = self.data_ptr = None

    def matches(self, p: torch.Tensor, row_of_slot: torch.Tensor) -> bool:
        # row_of_slot is written only here and replaced (a new tensor) when optimizer state is loaded
        return row_of_slot is self.row_of_slot and p._version == self.version and p.data_ptr() == self.data_ptr

    def _reserve(self, p: torch.Tensor, needed: int) -> None:
        """Room for `needed` rows, grown by half again each time (rows are added at most steps)."""
        if needed <= len(self.params):
            return
        capacity = min(p.shape[0], max(needed, len(self.params) * 3 // 2, 1024))
        params = self.params.new_empty(capacity, *p.shape[1:])
        params[:self.used] = self.params[:self.used]
        self.params = params
        self.grads = self.grads.new_zeros(capacity, *p.shape[1:])
        self.last_slots = None  # the new gradient buffer is zero everywhere

    def take_step(self, p: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots for the rows read for the first time, then the packed weight rows and this step's packed
        gradient (zero at the touched rows the batch did not read). `grad` is coalesced."""
        grad_rows = grad.indices()[0]
        grad_slots = self.slot_of_row[grad_rows]
        new = grad_slots < 0
        added = int(new.sum())
        if added:  # rows read for the first time take the next free slots (their moments there are zero)
            new_rows, new_slots = grad_rows[new], torch.arange(self.used, self.used + added, device=p.device)
            self._reserve(p, self.used + added)
            grad_slots[new] = new_slots
            self.slot_of_row[new_rows] = new_slots
            self.row_of_slot[self.used:self.used + added] = new_rows.to(self.row_of_slot.dtype)
            torch.index_select(p, 0, new_rows, out=self.params[self.used:self.used + added])
            self.used += added
        grads = self.grads[:self.used]
        if self.last_slots is not None:
            grads.index_fill_(0, self.last_slots, 0.0)
        grads.index_copy_(0, grad_slots, grad.values())
        self.last_slots = grad_slots
        return self.params[:self.used], grads

    def write_back(self, p: torch.Tensor) -> None:
        p.index_copy_(0, self.row_of_slot[:self.used].long(), self.params[:self.used])
        self.version, self.data_ptr = p._version, p.data_ptr()

    def left_behind(self, p: torch.Tensor) -> None:
        """Record `p` as this step left it, behind the packed rows: a later write by anything else shows."""
        self.version, self.data_ptr = p._version, p.data_ptr()

    def write_rows(self, p: torch.Tensor, ids: torch.Tensor) -> None:
        """Write the packed rows among `ids` (token ids) into `p`; the others stay behind."""
        rows = ids.reshape(-1).unique()
        slots = self.slot_of_row[rows]
        packed = slots >= 0
        p.index_copy_(0, rows[packed], self.params[slots[packed]])
        self.version = p._version


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (L2) where some gradients are sparse: their values are the nonzero part."""
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
    torch._foreach_mul_(dense + sparse, factor)
    return total
