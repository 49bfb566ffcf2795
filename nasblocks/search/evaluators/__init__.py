"""How a trial is scored: the three evaluators a trial can have.

- trained: the sample's network is trained from scratch (:func:`.trained.run_trial`, or the
  job's own ``trainer`` with its signature);
- table: the sample is looked up in a tabular benchmark such as NAS-Bench-201
  (:mod:`.table`), nothing is trained;
- inherited weights: a one-shot search scores the subnet with the weights of a trained
  supernet (:mod:`nasblocks.supernet.evaluator`, dispatched by
  :func:`nasblocks.search.pipeline._inherit`).

:func:`nasblocks.search.pipeline.evaluate` is the one place that picks among them.
"""
