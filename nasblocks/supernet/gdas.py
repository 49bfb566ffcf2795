"""GDAS: differentiable search by hard Gumbel-softmax sampling (Dong & Yang, "Searching for
A Robust Neural Architecture in Four GPU Hours", CVPR 2019; the reference code is
D-X-Y/AutoDL-Projects, ``search_model_gdas.py``).

Every structural choice of the space (a choice between blocks: NAS-Bench-201's edges) gets
architecture logits ``alpha``. Each training call draws one option per node,
``argmax(log_softmax(alpha) + g)`` with Gumbel noise ``g``, and only that option runs: one
path per step, as SPOS. The straight-through weights ``h = onehot - p.detach() + p``, with
``p = softmax((log_softmax(alpha) + g) / tau)``, carry the gradient to ``alpha``: the output
of a gated layer is ``h[chosen] * output + sum(h[other])`` (values 1 and 0, so the network
computes exactly the drawn subnet), as GDAS's code sums its candidates.

A node's gate multiplies the output of every layer it governs: with NAS-Bench-201's one cell
repeated, an edge's choice gates that edge in all 15 cells, as GDAS's shared ``alpha`` does.
The weights step on training batches and ``alpha`` on validation batches, one step each
(:class:`nasblocks.train.Bilevel`), with GDAS's settings: Adam at 3e-4, betas (0.5, 0.999),
weight decay 1e-3, and ``tau`` falling linearly from 10 to 0.1 over the epochs.

The architecture GDAS returns is the argmax of ``alpha`` at every node: the search's first
trial. GDAS's CIFAR-10 NAS-Bench-201 result is 93.51 +- 0.13 % (the benchmark's paper,
Table 5, 250 epochs); DARTS' first-order search collapses to skip connections there (54.30 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from nasblocks.space import Sample, SearchSpace
from nasblocks.space.nodes import Choice, Node
from nasblocks.supernet.slots import StructuralNode

TAU_MAX, TAU_MIN = 10.0, 0.1
ARCH_LR, ARCH_BETAS, ARCH_WEIGHT_DECAY = 3e-4, (0.5, 0.999), 1e-3
INIT_SCALE = 1e-3  # alpha starts at 1e-3 * N(0, 1), as GDAS's


def _labels(space: SearchSpace) -> dict[str, tuple[Any, ...]]:
    """Every choice node's option labels, by node name."""
    return {n.name: n.labels for n in space.nodes if isinstance(n, Choice)}


def temperature(epoch: int, epochs: int) -> float:
    """GDAS's schedule: ``TAU_MAX`` at the first epoch, ``TAU_MIN`` at the last."""
    if epochs <= 1:
        return TAU_MAX
    return TAU_MAX - (TAU_MAX - TAU_MIN) * (epoch - 1) / (epochs - 1)


class Architecture(nn.Module):
    """The logits of every structural node (``alpha``), and the gates of the last draw."""

    def __init__(self, nodes: tuple[StructuralNode, ...], space: SearchSpace, seed: int):
        super().__init__()
        sizes = {name: len(labels) for name, labels in _labels(space).items()}
        self.names = [n.name for n in nodes]
        generator = torch.Generator().manual_seed(seed)
        self.alpha = nn.ParameterList(
            nn.Parameter(INIT_SCALE * torch.randn(sizes[name], generator=generator))
            for name in self.names
        )
        self.index = {name: i for i, name in enumerate(self.names)}
        self.tau = TAU_MAX
        self.noise = torch.Generator().manual_seed(seed + 3)
        self.gates: dict[str, tuple[Tensor, int]] = {}

    def draw(self, space: SearchSpace) -> Sample:
        """A subnet drawn by hard Gumbel-softmax; its gates kept for the forward pass."""
        self.gates = {}
        return space.sample(self)

    def suggest(self, node: Node) -> Any:  # a sampling source (``SearchSpace.sample``)
        assert isinstance(node, Choice)  # the space's loader refuses other nodes under gdas
        alpha = self.alpha[self.index[node.name]]
        while True:  # GDAS redraws the rare noise that overflows
            u = torch.rand(alpha.shape, generator=self.noise).clamp_min(1e-20)
            gumbel = -torch.log(-torch.log(u)).to(alpha.device, alpha.dtype)
            probs = torch.softmax((torch.log_softmax(alpha, -1) + gumbel) / self.tau, -1)
            if torch.isfinite(probs).all():
                break
        index = int(probs.detach().argmax())
        hard = torch.zeros_like(probs)
        hard[index] = 1.0
        self.gates[node.name] = (hard - probs.detach() + probs, index)
        return node.labels[index]

    def gate(self, names: tuple[str, ...], output: Tensor) -> Tensor:
        """``output`` of a layer governed by ``names``, times its straight-through gates."""
        for name in names:
            drawn = self.gates.get(name)
            if drawn is None:
                continue
            weights, index = drawn
            others = weights.sum() - weights[index]  # 0, with the other options' gradients
            output = output * weights[index].to(output.dtype) + others.to(output.dtype)
        return output

    def chosen(self, space: SearchSpace) -> dict[str, Any]:
        """The architecture GDAS returns: every node's most likely option."""
        labels = _labels(space)
        return {
            name: labels[name][int(self.alpha[i].detach().argmax())]
            for i, name in enumerate(self.names)
        }

    def probabilities(self, space: SearchSpace) -> dict[str, dict[str, float]]:
        """softmax(alpha) of every node, by option: what the report shows."""
        labels = _labels(space)
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.names):
            p = torch.softmax(self.alpha[i].detach().float().cpu(), -1).tolist()
            out[name] = {str(label): round(v, 4) for label, v in zip(labels[name], p, strict=True)}
        return out

    def state(self) -> dict[str, Any]:
        return {"noise": self.noise.get_state(), "tau": self.tau}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.noise.set_state(state["noise"])
        self.tau = float(state["tau"])

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.tau = temperature(epoch, epochs)

    def optimizer(self, lr: float = ARCH_LR) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.alpha.parameters(),
            lr=lr,
            betas=ARCH_BETAS,
            weight_decay=ARCH_WEIGHT_DECAY,
        )
