"""One-shot architecture search: a space compiled into a weight-sharing supernet.

>>> from nasblocks.supernet import Supernet
>>> net = Supernet(space, DataInfo((3, 32, 32), 10))   # every network of the space
>>> sub = net.draw()                                   # one of them, built on the meta device
>>> stats = net.recalibrate(sub, train_batches)        # its batch norm statistics
>>> state = net.extract(sub, stats)                    # nasblocks.build(sub.spec) loads it

:mod:`.slots` is the weight-sharing rule, :mod:`.network` the module, :mod:`.training` how
it is trained (single path, the sandwich rule) and :mod:`.evaluator` how a search scores
subnets with it.
"""

from __future__ import annotations

from nasblocks.supernet.network import Subnet, Supernet, SupernetError

__all__ = ["Subnet", "Supernet", "SupernetError"]
