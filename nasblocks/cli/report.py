"""``nasblocks report OUT``: rebuild a search's report and result files from its study."""

from __future__ import annotations

from pathlib import Path

from nasblocks.cli.main import add_command


def run(args) -> int:
    from nasblocks.files import check_folder
    from nasblocks.search.outputs.folder import environment_errors
    from nasblocks.search.outputs.report import write_report
    from nasblocks.search.outputs.results import load_study, read_run_file, write_outputs

    out = Path(args.out)
    run = read_run_file(out)
    check_folder(out, "OUT")  # the files are rebuilt in place
    with environment_errors(out, run["storage"]):
        study = load_study(out)
        write_outputs(study, out)
        path = write_report(study, out)
    print(path)
    return 0


def register(sub) -> None:
    p = add_command(
        sub,
        "report",
        "rebuild report.md, trials.csv, best.yaml and plots of a search folder",
        "nasblocks report experiments/runs/resnet_like",
        run,
    )
    p.add_argument("out", metavar="OUT", help="a search output folder (holds run.json)")
