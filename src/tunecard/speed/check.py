"""The training-mode check: a few training batches' loss and gradients with the plan's levers and without.

`packing.packing_matches` checks the packed forward pass in evaluation mode. Training runs other code: dropout,
the padding-free attention's written-out backward (`attention._PackedRowsAttention`), the fused projections,
the sparse embedding gradient. Before a `speed: auto` run trains, `reference_values` computes the loss (the run's
own, class weights included, where it has one) and every gradient of the first training batches with the model as
transformers built it (padded batches), and
`compare` holds the values with the levers applied against them. Both run in fp32 with every dropout
probability set to 0 (the masks are random, so they cannot be compared) and the random state restored, so the
check changes nothing the run does next.

Tolerance: the two sides compute the same function in another order (rows packed or padded, three projections
or one, kernels that block sums differently on AMX, AVX-512 and AVX2 CPUs): in fp32 their losses differ by
about 1e-7 relative and their gradients by 1e-6 to 1e-5 (relative L2 norm per tensor). A lever that computes
something else (a wrong mask, position or label) moves them by 1e-2 or more. The bounds sit between.
"""

from __future__ import annotations

import contextlib

import torch

CHECK_BATCHES = 2  # training batches compared
CHECK_BATCH_SIZE = 8  # features per batch
LOSS_RTOL = 1e-4  # |loss difference| / |reference loss|
GRAD_RTOL = 1e-3  # |gradient difference| / |reference gradient| (L2 norms, per parameter)
GRAD_ATOL = 1e-7  # for gradients that are (nearly) zero


def check_batches(features: list) -> list[list[dict]]:
    """The items of the checked batches: the first training features, CHECK_BATCH_SIZE at a time."""
    items = [feature.model_inputs() for feature in features[:CHECK_BATCHES * CHECK_BATCH_SIZE]]
    return [items[i:i + CHECK_BATCH_SIZE] for i in range(0, len(items), CHECK_BATCH_SIZE) if items[i:i + 2]]


@contextlib.contextmanager
def _without_dropout(model: torch.nn.Module):
    """Training mode with every dropout probability 0 (modules, and the float attributes some attention modules
    read, e.g. ModernBERT's `attention_dropout`); fp32; the random state restored afterwards."""
    was_training = model.training
    saved = []
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            saved.append((module, "p", module.p))
            module.p = 0.0
        for name in ("attention_dropout", "dropout_prob"):
            value = getattr(module, name, None)
            if isinstance(value, float):
                saved.append((module, name, value))
                setattr(module, name, 0.0)
    rng = torch.get_rng_state()
    model.train()
    try:
        with torch.autocast(next(model.parameters()).device.type, enabled=False):
            yield
    finally:
        torch.set_rng_state(rng)
        for module, name, value in saved:
            setattr(module, name, value)
        model.train(was_training)


def step_values(model: torch.nn.Module, batches: list[dict], loss_function=None
                ) -> tuple[list[float], dict[str, torch.Tensor]]:
    """The loss of each batch and the gradients summed over them, with dropout off (see the module docstring).
    `loss_function(logits, labels)`: the run's own loss (class weights), else the model's. The model's gradients
    are left as they were (None)."""
    device = next(model.parameters()).device
    losses: list[float] = []
    grads: dict[str, torch.Tensor] = {}
    with _without_dropout(model):
        for batch in batches:
            model.zero_grad(set_to_none=True)
            inputs = {key: value.to(device) for key, value in batch.items()}
            if loss_function is None:
                loss = model(**inputs).loss
            else:
                labels = inputs.pop("labels")
                loss = loss_function(model(**inputs).logits, labels)
            loss.backward()
            losses.append(loss.item())
            for name, parameter in model.named_parameters():
                if parameter.grad is not None:
                    grad = parameter.grad.to_dense() if parameter.grad.is_sparse else parameter.grad
                    grads[name] = grads[name] + grad if name in grads else grad.detach().clone()
    model.zero_grad(set_to_none=True)
    return losses, grads


def compare(reference: tuple[list[float], dict], planned: tuple[list[float], dict]) -> str | None:
    """None when `planned` matches `reference` within the tolerances; else what differs, in words."""
    (ref_losses, ref_grads), (losses, grads) = reference, planned
    for index, (expected, found) in enumerate(zip(ref_losses, losses)):
        if not abs(found - expected) <= LOSS_RTOL * abs(expected) + 1e-6:
            return f"batch {index + 1}: loss {found:.6g} with the levers, {expected:.6g} without"
    if set(grads) != set(ref_grads):
        missing = sorted(set(ref_grads) ^ set(grads))[:3]
        return f"gradients for other parameters with the levers ({', '.join(missing)})"
    for name, expected in ref_grads.items():
        found = grads[name]
        difference = (found.float() - expected.float()).norm().item()
        scale = expected.float().norm().item()
        if not difference <= GRAD_RTOL * scale + GRAD_ATOL:
            return f"the gradient of {name} differs by {difference / max(scale, 1e-30):.2e} (relative L2 norm)"
    return None
