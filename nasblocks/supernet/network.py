"""The supernet: one module holding the shared weights of every network a space describes.

A subnet is the sample's own network, built by :func:`nasblocks.build` on the meta device (no
memory, a few milliseconds, cached), and run with ``torch.func.functional_call`` on views of
the shared tensors (:mod:`.slots` says which). So the supernet runs exactly the layers the
built network runs, and :meth:`Supernet.extract` returns a ``state_dict`` that
``nasblocks.build(sample spec)`` loads with ``strict=True`` and that gives the supernet's
outputs: what was scored is what ships (Once-for-All's ``get_active_subnet``).

Batch norm statistics are not shared. Training uses each batch's statistics; a subnet is
scored after :meth:`Supernet.recalibrate` has estimated its own from training batches (the
practice of SPOS, OFA and BigNAS: with the supernet's running averages, inherited-weight
accuracy is noise).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from nasblocks.errors import SearchError, SpecError
from nasblocks.search.candidate import DataInfo, complete_spec
from nasblocks.space import RandomSource, Sample, SearchSpace
from nasblocks.space.nodes import Choice, FloatRange, IntRange, Node, is_structural
from nasblocks.spec import Spec, load_spec
from nasblocks.spec.plan import plan
from nasblocks.supernet.gdas import Architecture
from nasblocks.supernet.slots import SlotKey, governed_layers, slot_keys, structural_nodes

BN_STATS = ("running_mean", "running_var", "num_batches_tracked")
CACHE_SIZE = 512  # subnets kept built (meta modules: no tensor memory)
MAX_TRIES = 200  # draws before a space that yields no valid network is given up on


class SupernetError(SearchError):
    """The space cannot be compiled into a supernet, or a checkpoint does not belong to it."""


class _Unseen(Exception):
    """A training draw with a shape the shared tensors do not hold."""


@dataclass
class Subnet:
    """One architecture as the supernet runs it."""

    sample: Sample
    spec: Spec
    module: nn.Module  # built on the meta device
    params: tuple[tuple[str, int, tuple[slice, ...]], ...]  # name, slot, region
    consts: tuple[tuple[str, int, tuple[slice, ...]], ...]  # buffers other than BN statistics
    stats: tuple[tuple[str, tuple[int, ...], torch.dtype], ...]  # BN statistics to make
    norms: tuple[_BatchNorm, ...]

    @property
    def key(self) -> str:
        return self.spec.hash()


def region(slot: tuple[int, ...], shape: tuple[int, ...], kernel: bool) -> tuple[slice, ...]:
    """Where a tensor of ``shape`` lies in its slot: the first entries of every dimension,
    the centre of a convolution's kernel dimensions (OFA's elastic kernel)."""
    out = []
    for d, (m, s) in enumerate(zip(slot, shape, strict=True)):
        start = (m - s) // 2 if kernel and d >= 2 else 0
        out.append(slice(start, start + s))
    return tuple(out)


class ExtremeSource:
    """Every numeric node at its low or high end (a seeded coin per node), structural choices
    at random: the samples that reach the largest shapes of every slot."""

    def __init__(
        self, seed: int, high: bool | None = None, forced: Mapping[str, Any] | None = None
    ) -> None:
        self.rng = RandomSource(seed)
        self.high = high
        self.forced = dict(forced or {})

    def suggest(self, node: Node) -> Any:
        if node.name in self.forced:
            return self.forced[node.name]
        high = self.high if self.high is not None else self.rng.rng.random() < 0.5
        if isinstance(node, IntRange):  # the high end on the node's grid
            return node.low + (node.high - node.low) // node.step * node.step if high else node.low
        if isinstance(node, FloatRange):
            return (
                node.grid()[-1]
                if high and node.step is not None
                else (node.high if high else node.low)
            )
        assert isinstance(node, Choice)
        values = node.labels
        if all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in node.options):
            order = sorted(range(len(values)), key=lambda i: node.options[i])
            return values[order[-1] if high else order[0]]
        return self.rng.suggest(node)


class Supernet(nn.Module):
    """The shared weights of a space and the subnet each forward call runs.

    In training mode every call runs the subnet ``path()`` draws (single-path sampling); in
    eval mode the active subnet (:meth:`activate`, with its recalibrated statistics), or, with
    none active, a drawn subnet with batch statistics (the training curve's validation).
    """

    def __init__(
        self,
        space: SearchSpace,
        info: DataInfo,
        *,
        seed: int = 0,
        discovery: int = 30,
        slots: Iterable[tuple[SlotKey, tuple[int, ...], str, torch.dtype]] | None = None,
        architecture: Architecture | None = None,
    ) -> None:
        super().__init__()
        self.space, self.info, self.seed = space, info, seed
        self.structural = structural_nodes(space)
        self.architecture = architecture  # GDAS's logits and gates (None: no relaxation)
        self.weights = nn.ParameterList()
        self.slot_of: dict[SlotKey, int] = {}
        self.shapes: list[tuple[int, ...]] = []
        self.kinds: list[str] = []  # PARAM, KERNEL (kernels share their centre) or CONST
        self.skipped = 0  # training draws skipped for shapes outside the survey
        self.grown = 0  # slots made or grown while scoring
        self.growable = False  # only scoring (no optimiser holds the tensors) may grow them
        self._cache: OrderedDict[str, Subnet] = OrderedDict()
        self._active: tuple[Subnet, dict[str, Tensor]] | None = None
        self.path: Callable[[], Sample] = self.random_path(seed)
        self.eval_path: Callable[[], Sample] = self.random_path(seed + 1)  # the curve's draws
        self.paths_per_step = 1
        self.last: Subnet | None = None
        if slots is not None:  # restoring a checkpoint: the slots as they were
            for key, shape, kind, dtype in slots:
                self._new_slot(key, shape, kind, dtype)
        else:
            self._discover(discovery)

    # -- drawing subnets ------------------------------------------------------------------

    def random_path(self, seed: int) -> Callable[[], Sample]:
        source = RandomSource(seed)
        return lambda: self.space.sample(source)

    def subnet(self, sample: Sample, module: nn.Module | None = None) -> Subnet:
        """The built subnet of ``sample`` (raises a located ``SpecError`` if it does not
        build); ``module``: its meta-device network, when already built."""
        spec = load_spec(complete_spec(sample.spec, self.info, self.space.settings))
        labels = [(n.name, sample.params.get(n.name)) for n in self.structural]
        key = spec.hash() + repr(labels)  # the same network may share by other options
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        net = self._compile(sample, spec, module or _meta_build(spec))
        self._cache[key] = net
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return net

    def draw(self, path: Callable[[], Sample] | None = None) -> Subnet:
        """A valid subnet from ``path`` (default: the training path); invalid draws are
        skipped, as a trained search records them infeasible."""
        path = path or self.path
        for _ in range(MAX_TRIES):
            try:
                return self.subnet(path())
            except SpecError:
                continue
            except _Unseen:
                self.skipped += 1
                continue
        raise SupernetError(f"no valid network in {MAX_TRIES} draws from the space")

    def _compile(self, sample: Sample, spec: Spec, module: nn.Module) -> Subnet:
        kind, owner = _kinds(module)
        norms = tuple(m for m in module.modules() if isinstance(m, _BatchNorm))
        tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        planned = plan(spec)
        keys = slot_keys(owner, planned, self.structural, sample.params)
        if self.architecture is not None:
            self._gate(module, governed_layers(planned, self.structural, sample.params))
        params: list[tuple[str, int, tuple[slice, ...]]] = []
        consts: list[tuple[str, int, tuple[slice, ...]]] = []
        stats: list[tuple[str, tuple[int, ...], torch.dtype]] = []
        for name, t in tensors.items():
            shape, k = tuple(t.shape), kind[name]
            if k == STAT:
                stats.append((name, shape, t.dtype))
                continue
            slot = self._slot(keys[name], shape, k, t.dtype)
            where = region(self.shapes[slot], shape, k == KERNEL)
            (consts if k == CONST else params).append((name, slot, where))
        return Subnet(sample, spec, module, tuple(params), tuple(consts), tuple(stats), norms)

    # -- the shared tensors -----------------------------------------------------------------

    def _gate(self, module: nn.Module, governed: Mapping[str, tuple[str, Any]]) -> None:
        """Hooks that multiply each structural layer's output by its GDAS gates, in training
        calls only (scoring and recalibration run the plain subnet)."""
        architecture = self.architecture
        assert architecture is not None
        for name, (_, chosen) in governed.items():
            names = tuple(node for node, _ in chosen)
            if not names:
                continue

            def hook(_: nn.Module, __: Any, output: Tensor, names=names) -> Tensor:
                return architecture.gate(names, output) if self.training else output

            module.get_submodule(name).register_forward_hook(hook)

    def _slot(self, key: SlotKey, shape: tuple[int, ...], kind: str, dtype: torch.dtype) -> int:
        index = self.slot_of.get(key)
        if index is None:
            if not self.growable:  # an optimiser may hold the tensors: draw again
                raise _Unseen(key[0])
            self.grown += 1
            return self._new_slot(key, shape, kind, dtype)
        have = self.shapes[index]
        if len(have) != len(shape):
            raise SupernetError(f"{key[0]!r} changes rank between subnets: {have} and {shape}")
        if any(s > h for s, h in zip(shape, have, strict=True)):
            if not self.growable:  # an optimiser may hold this tensor: draw again
                raise _Unseen(key[0])
            self._grow(index, tuple(max(s, h) for s, h in zip(shape, have, strict=True)))
        return index

    @torch.no_grad()
    def _grow(self, index: int, shape: tuple[int, ...]) -> None:
        """A shape the survey did not draw, met while scoring: the slot grows (the new part
        untrained, zero) and the subnets built on the old shape are built again."""
        old = self.weights[index]
        if self.kinds[index] == KERNEL and any(
            (n - o) % 2 for n, o in zip(shape[2:], old.shape[2:], strict=True)
        ):
            raise SupernetError(f"kernels of {old.shape} and {shape} have no common centre")
        new = torch.zeros(shape, dtype=old.dtype, device=old.device)
        new[region(shape, tuple(old.shape), self.kinds[index] == KERNEL)] = old
        old.data = new
        self.shapes[index] = shape
        self._cache.clear()
        self.grown += 1

    def _new_slot(
        self,
        key: SlotKey,
        shape: tuple[int, ...],
        kind: str,
        dtype: torch.dtype = torch.float32,
    ) -> int:
        """A new shared tensor (zero until initialised), where the others are."""
        index = len(self.shapes)
        device = self.device if len(self.weights) else None
        self.slot_of[key] = index
        self.shapes.append(shape)
        self.kinds.append(kind)
        tensor = torch.zeros(shape, dtype=dtype, device=device)
        self.weights.append(nn.Parameter(tensor, requires_grad=kind != CONST))
        return index

    def _discover(self, samples: int) -> None:
        """Survey the space for the largest shape of every slot, then initialise each slot
        as the spec's own init scheme initialises the largest network that uses it."""
        largest: dict[SlotKey, tuple[int, ...]] = {}
        sources: list[Any] = []
        numeric = any(not is_structural(n) for n in self.space.nodes)
        ends = (True, False, None) if numeric else (None,)
        for node in self.space.nodes:  # every option of every structural choice, at both ends
            if is_structural(node):
                assert isinstance(node, Choice)
                for label in node.labels:
                    for i, high in enumerate(ends):
                        seed = self.seed + 7 * len(sources) + i
                        sources.append(ExtremeSource(seed, high, {node.name: label}))
        sources += [ExtremeSource(self.seed, True), ExtremeSource(self.seed, False)]
        sources += [ExtremeSource(self.seed + 1 + i) for i in range(samples // 2)]
        sources += [RandomSource(self.seed + 10_000 + i) for i in range(samples - samples // 2)]
        owners: dict[SlotKey, Sample] = {}
        kinds: dict[SlotKey, str] = {}
        dtypes: dict[SlotKey, torch.dtype] = {}
        seen: set[str] = set()
        modules: dict[int, nn.Module] = {}
        for source in sources:
            sample = self.space.sample(source)
            drawn = repr(sorted(sample.params.items()))
            if drawn in seen:  # the ends of a space without numeric nodes are one sample
                continue
            seen.add(drawn)
            try:
                spec = load_spec(complete_spec(sample.spec, self.info, self.space.settings))
            except SpecError:
                continue
            module = _meta_build(spec)
            modules[id(sample)] = module
            kind, owner = _kinds(module)
            named = {**dict(module.named_parameters()), **dict(module.named_buffers())}
            tensors = {k: v for k, v in named.items() if kind[k] != STAT}
            keys = slot_keys(owner, plan(spec), self.structural, sample.params)
            for name, t in tensors.items():
                key, shape = keys[name], tuple(t.shape)
                have = largest.get(key)
                if have is None or (
                    len(have) == len(shape) and math.prod(shape) > math.prod(have)
                ):
                    owners[key] = sample
                if have is not None and len(have) == len(shape):
                    shape = tuple(max(a, b) for a, b in zip(have, shape, strict=True))
                largest[key] = shape
                kinds[key] = kind[name]
                dtypes[key] = t.dtype
        if not largest:
            raise SupernetError("no network of the space builds: nothing to share")
        for key, shape in largest.items():
            self._new_slot(key, shape, kinds[key], dtypes[key])
        self._initialise(owners, modules)

    @torch.no_grad()
    def _initialise(self, owners: Mapping[SlotKey, Sample], modules: dict[int, nn.Module]) -> None:
        from nasblocks.train.trainer import build_model

        key_of = {index: key for key, index in self.slot_of.items()}
        wanted: dict[int, set[SlotKey]] = {}
        samples: dict[int, Sample] = {}
        for key, sample in owners.items():
            wanted.setdefault(id(sample), set()).add(key)
            samples[id(sample)] = sample
        for sid, keys in wanted.items():
            net = self.subnet(samples[sid], modules[sid])  # built by the survey
            real = build_model(net.spec, self.seed)
            state = {**dict(real.named_parameters()), **dict(real.named_buffers())}
            for name, slot, where in (*net.params, *net.consts):
                if key_of[slot] in keys:
                    self.weights[slot].data[where] = state[name]

    @property
    def device(self) -> torch.device:
        """Where the shared tensors are."""
        return self.weights[0].device if len(self.weights) else torch.device("cpu")

    def slots(self) -> list[tuple[SlotKey, tuple[int, ...], str, torch.dtype]]:
        """What a checkpoint needs to rebuild the same slots."""
        keys = sorted(self.slot_of.items(), key=lambda item: item[1])
        return [(key, self.shapes[i], self.kinds[i], self.weights[i].dtype) for key, i in keys]

    # -- running a subnet -------------------------------------------------------------------

    def tensors(self, net: Subnet, stats: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The subnet's parameters and buffers: views of the shared tensors, and BN
        statistics (given, or fresh ones for batch-statistics use)."""
        out: dict[str, Tensor] = {}
        weights = self.weights
        for name, slot, where in net.params:
            out[name] = weights[slot][where]
        for name, slot, where in net.consts:
            out[name] = weights[slot][where]
        out.update(stats if stats is not None else _fresh_stats(net, self.device))
        return out

    def run(self, net: Subnet, x: Tensor, stats: Mapping[str, Tensor] | None = None) -> Tensor:
        """``net`` on ``x``: with ``stats`` its recalibrated statistics (eval), else the
        batch's (the module's own mode decides dropout and the like)."""
        self.last = net
        module = net.module
        module.train(self.training)
        if stats is None and not self.training:
            for norm in net.norms:  # batch statistics: BN in training mode, nothing else
                norm.train(True)
        return functional_call(module, self.tensors(net, stats), (x,))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.run(self.draw(), x)
        if self._active is not None:
            net, stats = self._active
            return self.run(net, x, stats)
        return self.run(self.draw(self.eval_path), x)

    @torch.no_grad()
    def recalibrate(self, net: Subnet, batches: Iterable[tuple[Tensor, Any]]) -> dict[str, Tensor]:
        """Batch norm statistics of ``net`` estimated on ``batches`` (a cumulative average over
        all of them, as torchvision's ``momentum=None``); nothing else runs in training mode."""
        stats = _fresh_stats(net, self.device)
        momenta = [n.momentum for n in net.norms]
        was = self.training
        try:
            self.train(False)
            net.module.train(False)
            for norm in net.norms:
                norm.momentum = None
                norm.train(True)
            for x, _ in batches:
                functional_call(net.module, self.tensors(net, stats), (x,))
        finally:
            for norm, m in zip(net.norms, momenta, strict=True):
                norm.momentum = m
            self.train(was)
        return stats

    def activate(self, net: Subnet | None, stats: Mapping[str, Tensor] | None = None) -> None:
        """Make eval-mode calls run ``net`` with ``stats`` (None: back to drawn subnets)."""
        self._active = None if net is None else (net, dict(stats or {}))

    def extract(self, net: Subnet, stats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The ``state_dict`` of ``nasblocks.build(net.spec)`` with the inherited weights and
        ``stats``: loads with ``strict=True`` and gives the supernet's outputs."""
        tensors = self.tensors(net, stats)
        order = net.module.state_dict().keys()
        return {k: tensors[k].detach().clone().contiguous() for k in order}


PARAM, KERNEL, CONST, STAT = "param", "kernel", "const", "stat"


def _meta_build(spec: Spec) -> nn.Module:
    from nasblocks.builder import build_spec

    with torch.device("meta"):
        return build_spec(spec)


def _kinds(module: nn.Module) -> tuple[dict[str, str], dict[str, str]]:
    """Each tensor of ``module``: what it is (a parameter, a convolution's weight whose kernel
    dimensions share their centre, a constant buffer, or a batch norm statistic, never
    shared) and the class of the module holding it (tensors of different classes, a
    convolution and the norm that takes its index in another subnet, never share)."""
    kind: dict[str, str] = {}
    owner: dict[str, str] = {}
    for prefix, m in module.named_modules():
        dot = prefix + "." if prefix else ""
        for name, _ in m.named_parameters(recurse=False):
            kind[dot + name] = KERNEL if isinstance(m, _ConvNd) and name == "weight" else PARAM
            owner[dot + name] = type(m).__name__
        for name, _ in m.named_buffers(recurse=False):
            stat = isinstance(m, _BatchNorm) and name in BN_STATS
            kind[dot + name] = STAT if stat else CONST
            owner[dot + name] = type(m).__name__
    return kind, owner


def _fresh_stats(net: Subnet, device: torch.device) -> dict[str, Tensor]:
    out = {}
    for name, shape, dtype in net.stats:
        if name.endswith("running_var"):
            out[name] = torch.ones(shape, dtype=dtype, device=device)
        else:
            out[name] = torch.zeros(shape, dtype=dtype, device=device)
    return out
