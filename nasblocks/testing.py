"""Conformance checks for blocks — run them on your own plugin blocks, as the built-ins do.

>>> from nasblocks.testing import check_block
>>> check_block("my_block")            # every example the block declares

Each check builds the block from its declared ``examples``, and asserts:

* the shape contract predicts the real output shape;
* forward and backward run, with finite outputs and gradients;
* the module traces with ``torch.fx.symbolic_trace`` and the trace computes the same output;
* the module's constructor takes ``in_channels`` and exactly the spec's fields.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import fx, nn

from nasblocks.errors import RegistryError
from nasblocks.registry import BlockSpec, Shape, get_block


class ConformanceError(AssertionError):
    """A block breaks its contract."""


def _inputs(in_shape: Any, batch: int = 2) -> list[torch.Tensor]:
    shapes = in_shape if isinstance(in_shape, list) else [in_shape]
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(batch, *s, generator=gen, requires_grad=True) for s in shapes]


class _Host(nn.Module):
    """Hosts a block for fx as a network would: torch.nn layers stay leaves, and a
    multi-input block gets its inputs as separate arguments from one indexed list."""

    def __init__(self, module: nn.Module, n: int) -> None:
        super().__init__()
        self.module, self.n = module, n

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.module(*[xs[i] for i in range(self.n)])


def check_signature(kind: str) -> None:
    """The module's constructor is ``(in_channels, <the spec's fields>)``."""
    cls = get_block(kind)
    if cls.module is None or cls.build is not BlockSpec.build:
        return  # a custom build() maps the fields itself
    if isinstance(cls.module, str) and cls.module.startswith("torch."):
        return
    module_cls = cls.model_construct().module_class()
    if isinstance(module_cls, type):
        sig = list(inspect.signature(module_cls.__init__).parameters.values())[1:]
    else:  # a factory function standing for a class
        sig = list(inspect.signature(module_cls).parameters.values())
    expected = ["in_channels", *cls.model_fields]
    params = [p.name for p in sig]
    # extra trailing arguments are allowed when they have defaults (set by a custom build_for)
    extra_ok = all(p.default is not inspect.Parameter.empty for p in sig[len(expected) :])
    if params[: len(expected)] != expected or not extra_ok:
        raise ConformanceError(
            f"{kind}: {module_cls.__name__}.__init__ takes {params}, the spec has {expected}"
        )


def check_cost(spec: Any, in_shape: Any, what: str = "") -> None:
    """A declared :meth:`~nasblocks.registry.BlockSpec.cost` equals the parameters and
    multiply-accumulates counted on the built block (blocks that declare none pass)."""
    from nasblocks.analysis import measure_block

    declared = spec.cost(in_shape)
    if declared is None:
        return
    counted = measure_block(spec, in_shape)
    if tuple(declared) != counted:
        raise ConformanceError(
            f"{what or spec.kind}: cost() says {declared[0]:,} parameters and "
            f"{declared[1]:,} MACs for input {in_shape}; the built block has {counted[0]:,} "
            f"and {counted[1]:,}"
        )


def check_example(kind: str, params: dict[str, Any], in_shape: Any, trace: bool = True) -> None:
    """Shape contract, forward/backward, finiteness and fx trace for one configuration."""
    spec = get_block(kind)(**params)
    predicted: Shape = tuple(spec.output_shape(in_shape))
    module: nn.Module = spec.build_for(in_shape)
    module.train()
    leaves = _inputs(in_shape)
    xs = [x * 1.0 for x in leaves]  # non-leaf, so in-place activations are allowed
    out = module(*xs)
    if not isinstance(out, torch.Tensor):
        raise ConformanceError(f"{kind}{params}: forward returned {type(out).__name__}")
    if tuple(out.shape[1:]) != predicted:
        raise ConformanceError(
            f"{kind}{params}: shape contract says {predicted} for input {in_shape}, "
            f"the module gives {tuple(out.shape[1:])}"
        )
    if not torch.isfinite(out).all():
        raise ConformanceError(f"{kind}{params}: non-finite output")
    check_cost(spec, in_shape, f"{kind}{params}")
    out.float().square().mean().backward()
    for name, p in module.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            raise ConformanceError(f"{kind}{params}: non-finite gradient in {name}")
    if any(p.requires_grad for p in module.parameters()) and all(
        p.grad is None for p in module.parameters()
    ):
        raise ConformanceError(f"{kind}{params}: no parameter received a gradient")
    if trace:
        module.eval()
        xs = [x.detach() for x in xs]
        with torch.no_grad():
            expected = module(*xs)
            got = fx.symbolic_trace(_Host(module, len(xs)))(xs)
        torch.testing.assert_close(got, expected, msg=f"{kind}{params}: fx trace differs")


def check_block(kind: str, trace: bool = True) -> int:
    """Run every check on every declared example of ``kind``; returns how many ran.

    A plugin's blocks exist once its module is imported (``import myblocks`` or
    :func:`nasblocks.plugins.load_plugin`)."""
    try:
        cls = get_block(kind)
    except RegistryError as e:
        raise RegistryError(f"{e}; is the module that registers it imported?") from None
    if not cls.examples:
        raise ConformanceError(f"{kind}: declares no `examples` to check")
    check_signature(kind)
    for params, in_shape in cls.examples:
        check_example(kind, dict(params), in_shape, trace=trace)
    return len(cls.examples)


class HashTrainer:
    """A stand-in for :func:`nasblocks.search.evaluators.trained.run_trial` that trains
    nothing: the accuracy is a deterministic function of the spec's hash and the learning
    rate, reported epoch by epoch like a real run. For testing spaces and backends in seconds:

    >>> search("space.yaml", trainer=HashTrainer(log="calls.txt"))

    ``log``: a file each call appends the spec's hash to, so that calls made in worker
    processes and Ray workers can be counted. Picklable, as a trainer must be.
    """

    def __init__(self, log: str | None = None) -> None:
        self.log = None if log is None else str(log)

    def score(self, spec: Any, config: Any) -> float:
        """The final validation accuracy of ``spec`` trained with ``config``."""
        return int(spec.hash(), 16) % 997 / 1000 * 0.9 + config.lr / 10

    def __call__(self, spec, config, data, report=None, *, keep_weights: bool = True):
        from nasblocks.search.evaluators.trained import TrialOutcome
        from nasblocks.spec import load_spec

        spec = load_spec(spec)
        if self.log is not None:
            with open(self.log, "a") as f:  # one short append: whole lines from any process
                f.write(spec.hash() + "\n")
        acc = self.score(spec, config)
        epochs = 0
        pruned = False
        for epoch in range(1, config.epochs + 1):
            epochs = epoch
            metrics = {"val_acc": acc * epoch / config.epochs, "train_loss": 1.0 / epoch}
            if report is not None and report(epoch, metrics):
                pruned = True
                break
        metrics = {
            "val_acc": acc * epochs / config.epochs,
            "train_loss": 1.0 / epochs,
            "epochs": float(epochs),
            "duration_s": 0.0,
        }
        return TrialOutcome(metrics, pruned, None, None)
