"""Where studies live and how trials run.

:mod:`.storage`: the study's storage (SQLite, a journal file, PostgreSQL). Trials run in this
process (:mod:`nasblocks.search.engine`), in worker processes sharing one study
(:mod:`.workers`), or on Ray Tune (:mod:`.ray_backend`, with :mod:`.ray_trial` the worker's side
and :mod:`.ray_results` how its trials are recorded).
"""
