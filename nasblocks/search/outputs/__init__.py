"""What a run leaves behind and shows: the run folder (:mod:`.folder`), the result files
(:mod:`.results`: ``trials.csv``, ``best.yaml``, ``best.pt``), the report (:mod:`.report`,
with :mod:`.report_supernet` for a one-shot run) and the progress display (:mod:`.progress`).
"""
