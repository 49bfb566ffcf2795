"""Layers that pass several maps on: the graph pass that lets them hand a list to each other.

A layer of a spec passes one tensor on, so a multi-resolution layer (HRNet's) packs its
branches into one map (see :mod:`nasblocks.blocks.hrnet`): that is its contract with any
layer after it, and what the shape planner checks. Two such layers in a row would pack and
unpack for nothing, so the compiled forward lets them pass the list of branches instead: a
layer declaring ``gives_branches`` is called with ``pack=False`` where its only user declares
``takes_branches`` (it accepts the list or the packed map). The arithmetic is unchanged (the
packing only permutes elements), the module called on its own still packs, and a map that is
also a feature output, or read by a second layer, stays packed.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn


def pass_branches_unpacked(graph: fx.Graph, module: Callable[[str], nn.Module]) -> fx.Graph:
    """``graph`` with ``pack=False`` on each call whose one user takes the branches as a list;
    ``module(target)`` is the module a ``call_module`` node calls."""
    for node in graph.nodes:
        if node.op != "call_module" or not getattr(module(node.target), "gives_branches", False):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module" or node.kwargs:
            continue
        (user,) = users
        if getattr(module(user.target), "takes_branches", False) and user.args == (node,):
            node.kwargs = {"pack": False}
    graph.lint()
    return graph
