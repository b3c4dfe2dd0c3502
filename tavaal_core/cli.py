"""``python -m tavaal_core ...``: headless experiment runs.

Commands::

    run (--preset NAME | --config FILE) [--methods a,b] [--trials N] [--stages N] [--seed N]
        [--epochs N] [--epochs-increment N] [--pretrained imagenet|none] [--sweep FIELD=V1,V2 ...]
        [--device auto|cpu|cuda] [--output DIR] [--name NAME] [--threads N] [--quiet] [--yes]
        [--executor local|ray] [--workers N] [--ray-address auto|HOST:PORT]
    run --resume RUN_DIR [--device auto|cpu|cuda] [--threads N] [--quiet] [--executor ...] [--workers N]
    list [--output DIR]
    export RUN_DIR [--to DIR]
    summary RUN_DIR
    presets [NAME] [--brief]
    claims [--claim NAME] [--seeds N] [--set field=value ...] [--sweep field=v1,v2 ...] [--run RUN_DIR]
        [--to DIR] [--sequential] [--threads N] [--quiet]

Units (setting x trial x method) run in parallel worker processes by default (``--executor local``,
``--workers`` = the usable CPUs; 1 runs them in this process), or as Ray tasks (``--executor ray``: a local
Ray instance, or a cluster with ``--ray-address``). Every unit writes its own records into the run folder.

Exit codes: 0 done; 2 a user error, refused before anything runs (one line on stderr naming the field
or the file, no traceback: a bad value, an absent dataset, a damaged or busy run folder, an output
folder that is a file); 1 the run failed while running (one line; the status file keeps the message);
130 interrupted (Ctrl-C or SIGTERM; the run folder can be resumed).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from .config import PRETRAINED
from .constraints import Interval, parse_number
from .errors import ConfigError, TavaalError
from .executors import EXECUTORS

PROG = "python -m tavaal_core"
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
CONFIRM_ABOVE_S = 3600  # runs estimated longer than this need --yes


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message and exits; we want one line
        raise UsageError(message)


def _arg(constraint):
    """An argparse type from a constraint (tavaal_core.constraints): the word is read as the constraint's
    kind and checked by it; argparse names the option in its one-line message."""
    def parse(text):
        try:
            return parse_number(text, constraint)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)[2:] if str(e).startswith(": ") else str(e)) from None
    return parse


_POSITIVE = _arg(Interval(int, 1))
_NON_NEGATIVE = _arg(Interval(int, 0))


def _threads(text):
    # more intra-op threads than cores only slows torch down, and a huge count crashes it (segfault)
    cores = os.cpu_count() or 1
    return _arg(Interval(int, 1, cores, hint=" (this machine's CPU cores)"))(text)


def _folder(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder (the path is empty)")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="TA-VAAL Explorer: run, resume, list and export experiments.")
    sub = parser.add_subparsers(dest="command", metavar="{run,list,export,summary,presets,claims}", parser_class=_Parser)

    run = sub.add_parser("run", help="run an experiment (a preset or a config file), or resume one")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--preset", help="a preset name (see `presets`)")
    source.add_argument("--config", help="an experiment file (.json, .yaml)")
    source.add_argument("--resume", metavar="RUN_DIR", type=_folder,
                        help="continue a run folder where it stopped (recomputing damaged records)")
    run.add_argument("--methods", help="comma-separated methods (default: the preset's)")
    run.add_argument("--trials", type=_POSITIVE, help="number of trials (seeds seed, seed+1, ...)")
    run.add_argument("--stages", type=_POSITIVE, help="active-learning stages per trial")
    run.add_argument("--seed", type=_NON_NEGATIVE, help="base seed (trial t uses seed + t)")
    run.add_argument("--epochs", type=_POSITIVE, help="task-learner epochs at the first stage")
    run.add_argument("--epochs-increment", type=_NON_NEGATIVE, dest="epochs_increment",
                     help="task-learner epochs added at each later stage (Godwin et al. 2022: 5)")
    run.add_argument("--pretrained", choices=PRETRAINED,
                     help="ResNet-18 ImageNet weights, or 'none' to accept a random initialisation")
    run.add_argument("--device", help="auto, cpu or cuda (with --resume: continue on another device)")
    run.add_argument("--output", type=_folder, help="folder holding the run folders (default: runs/)")
    run.add_argument("--name", help="run folder name (default: <preset>-<date>-<time>)")
    run.add_argument("--threads", type=_threads, help="torch CPU threads (default: 1 for the MLP and small CNN on a CPU, else torch's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--sweep", action="append", metavar="FIELD=V1,V2",
                     help="run every value of a config field (repeat for more fields: every combination is a "
                          "setting), e.g. --sweep alpha=0,0.5,1,2")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local: worker processes on this machine (default); ray: one Ray task per unit")
    run.add_argument("--workers", type=_POSITIVE,
                     help="local: worker processes (default: one per usable CPU; 1 runs the units in this "
                          "process); ray without --ray-address: the local Ray instance's CPUs")
    run.add_argument("--ray-address", dest="ray_address",
                     help="join a running Ray cluster: 'auto' (this machine is part of it) or HOST:PORT; "
                          "the run folder must be on storage every node mounts at the same path")
    run.add_argument("--yes", action="store_true",
                     help=f"start even when the estimate is above {CONFIRM_ABOVE_S // 3600} hour(s)")

    lst = sub.add_parser("list", help="list the runs in a folder")
    lst.add_argument("--output", type=_folder, default="runs", help="folder holding the run folders (default: runs/)")

    exp = sub.add_parser("export", help="write a run's metrics (CSV), selections and scores (JSON)")
    exp.add_argument("run_dir", metavar="RUN_DIR", type=_folder)
    exp.add_argument("--to", type=_folder, help="destination folder (default: RUN_DIR/export)")

    summ = sub.add_parser("summary", help="print a run's learning curves and p-values")
    summ.add_argument("run_dir", metavar="RUN_DIR", type=_folder)

    pre = sub.add_parser("presets", help="the presets: their values and the source of each")
    pre.add_argument("name", nargs="?", help="one preset (default: all)")
    pre.add_argument("--brief", action="store_true", help="one line per preset")

    cl = sub.add_parser("claims", help="measure the papers' claims over seeds: verdict, CI, seeds where they hold")
    cl.add_argument("--claim", help="one claim (default: every claim); see tavaal_core.audit.CLAIMS")
    cl.add_argument("--seeds", type=_arg(Interval(int, 2)), help="seeds per setting (default: the setting's, 10 for two moons)")
    cl.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change a config field of the setting")
    cl.add_argument("--sweep", action="append", default=[], metavar="FIELD=V1,V2",
                    help="also measure the claim with each value of FIELD (one table of claim x setting)")
    cl.add_argument("--run", metavar="RUN_DIR", help="measure a saved run instead of running the claim's setting")
    cl.add_argument("--to", help="folder for claims-<name>.csv / .json (default: the audits folder)")
    cl.add_argument("--sequential", action="store_true", help="run seeds one at a time (no batched training)")
    cl.add_argument("--threads", type=_POSITIVE, help="torch CPU threads (default 1: the models are small)")
    cl.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


# -- commands ------------------------------------------------------------------------------------------
def _build_spec(args):
    from .experiment import validate_methods
    from .presets import load_preset, load_spec_file

    if args.preset is None and args.config is None:
        raise UsageError("run: give --preset NAME, --config FILE or --resume RUN_DIR")
    spec = load_preset(args.preset) if args.preset is not None else load_spec_file(args.config)
    methods = None
    if args.methods is not None:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        validate_methods(methods)
    changes = {}
    if args.stages is not None:
        changes["stages"] = args.stages
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.device is not None:
        changes["device"] = args.device
    if args.epochs is not None:
        changes["task_epochs"] = args.epochs
    if args.epochs_increment is not None:
        changes["task_epochs_increment"] = args.epochs_increment
    if args.pretrained is not None:
        changes["pretrained"] = args.pretrained
    sweep = None
    if args.sweep:
        sweep = dict(spec.sweep)
        sweep.update(_parse_sweep(args.sweep))
    return spec.with_(methods=methods, trials=args.trials, sweep=sweep, **changes)


def _parse_sweep(items: list[str]) -> dict:
    """``["alpha=0,0.5", "discriminator_rank_input=sigmoid,raw"]`` -> ``{"alpha": [0, 0.5], ...}`` (each value
    read as YAML: numbers, true / false, null, or text)."""
    import yaml

    sweep = {}
    for item in items:
        field, sep, values = item.partition("=")
        field = field.strip()
        if not sep or not field or not values.strip():
            raise UsageError(f"--sweep: give FIELD=V1,V2,..., e.g. alpha=0,0.5,1,2; got {item!r}")
        if field in sweep:
            raise UsageError(f"--sweep: {field} is given twice; list all its values once")
        parsed = []
        for text in values.split(","):
            try:
                parsed.append(yaml.safe_load(text.strip()) if text.strip() else None)
            except yaml.YAMLError:
                parsed.append(text.strip())
        sweep[field] = parsed
    return sweep


def _executor(args):
    """The executor the arguments ask for; before anything is written (Ray absent: exit 2, one line)."""
    from .executors import make_executor

    if args.ray_address is not None and args.executor != "ray":
        raise UsageError("--ray-address: only with --executor ray")
    if args.ray_address is not None and args.workers is not None:
        raise UsageError("--workers: a Ray cluster (--ray-address) brings its own CPUs and GPUs; drop --workers")
    return make_executor(args.executor, workers=args.workers, ray_address=args.ray_address, threads=args.threads)


class _Bars:
    """tqdm bars on stderr: one for the whole experiment (stages), one for the current phase."""

    def __init__(self, enabled: bool, parallel: bool = False):
        self.enabled = enabled
        self.parallel = parallel  # several units at once: no per-phase bar (it would flip between units)
        self.tty = sys.stderr.isatty()
        self.total_bar = None
        self.phase_bar = None
        self.phase_key = None

    def __call__(self, event):
        if not self.enabled:
            return
        setting = "" if event.setting is None else f"setting {event.setting} "
        if event.kind == "failed":  # a unit of a parallel run failed; the others go on
            self._close_phase()
            print(f"{setting}trial {event.trial} {event.method}: failed: {event.message}", file=sys.stderr, flush=True)
            return
        if not self.tty:  # a log file (e.g. a run started from the app): one line per finished stage
            if event.kind == "stage":
                print(f"[{event.done}/{event.total}] {setting}trial {event.trial} {event.method} stage {event.stage}: "
                      f"{event.labeled_count} labels, accuracy {event.accuracy:.4f}",
                      file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        if event.kind == "start":
            self.total_bar = tqdm(total=event.total, initial=event.done, desc="stages", unit="stage",
                                  file=sys.stderr, position=0, dynamic_ncols=True)
        elif event.kind == "phase" and not self.parallel:
            key = (event.trial, event.method, event.stage, event.phase)
            if key != self.phase_key:
                self._close_phase()
                self.phase_key = key
                self.phase_bar = tqdm(total=100, desc=f"trial {event.trial} {event.method} stage {event.stage}: "
                                                       f"{event.phase}", unit="%", file=sys.stderr, position=1,
                                      leave=False, dynamic_ncols=True, bar_format="{l_bar}{bar}| {postfix}")
            self.phase_bar.n = int(round(100 * min(max(event.fraction, 0.0), 1.0)))
            self.phase_bar.set_postfix_str(event.message[:60], refresh=True)
        elif event.kind == "stage":
            self._close_phase()
            if self.total_bar is not None:
                self.total_bar.update(1)
                self.total_bar.set_postfix_str(f"last: {setting}{event.method} t{event.trial} s{event.stage} "
                                               f"acc {event.accuracy:.3f}")
        elif event.kind == "finish":
            self.close()

    def _close_phase(self):
        if self.phase_bar is not None:
            self.phase_bar.close()
            self.phase_bar = None
            self.phase_key = None

    def close(self):
        self._close_phase()
        if self.total_bar is not None:
            self.total_bar.close()
            self.total_bar = None


def _estimate_or_refuse(spec, confirmed: bool, quiet: bool) -> None:
    """Print how long the run will take on this machine; above an hour, start only with --yes (the refusal is
    the one line printed)."""
    from .estimate import estimate_spec, format_duration

    if not quiet:
        print("estimating the run time on this machine (a short probe, cached)...", file=sys.stderr, flush=True)
    estimate = estimate_spec(spec)
    if estimate.seconds > CONFIRM_ABOVE_S and not confirmed:
        raise UsageError(f"--yes: this run would take {estimate.describe()}; pass --yes to start it "
                         f"(above {format_duration(CONFIRM_ABOVE_S)})")
    settings = f"{len(spec.settings)} settings x " if spec.settings else ""
    print(f"estimate: {estimate.describe()} ({settings}{spec.trials} trials x {len(spec.methods)} methods x "
          f"{spec.config.stages} stages, one unit after another)", file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _check_output(folder) -> None:
    """The folder of runs must be a folder we can write in, or one we can make: refused before anything runs."""
    from pathlib import Path

    path = Path(folder).absolute()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--output: {folder} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"--output: cannot write in {folder}")
        return
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir():
        raise UsageError(f"--output: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--output: cannot create {folder} (no write access to {parent})")


def _os_error(e: OSError, what: str) -> UsageError:
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    return UsageError(f"{what}: cannot write{where} ({e.strerror or e})")


def cmd_run(args) -> int:
    from . import store
    from .experiment import Experiment

    executor = _executor(args)
    if args.threads is not None:  # bounded by the cores (see _threads), set before the estimate's probe
        import torch

        torch.set_num_threads(args.threads)
    if args.resume is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("methods", "trials", "stages", "seed", "name", "pretrained",
                                                      "epochs", "epochs_increment", "output", "sweep")
                 if getattr(args, k) is not None]
        if given:
            raise UsageError(f"--resume continues the run's own config in its own folder; drop {', '.join(given)} "
                             "(--device may change: a GPU run resumes on the CPU with --device cpu)")
        experiment = Experiment.open(args.resume, device=args.device)
        from .training import resolve_device

        resolve_device(experiment.spec.config.device)  # 'cuda' on a machine without one: say so now
        experiment.check_not_running()
    else:
        output = args.output if args.output is not None else "runs"
        _check_output(output)
        spec = _build_spec(args)
        try:
            experiment = Experiment.create(spec, output, args.name,
                                           before_folder=lambda e: _estimate_or_refuse(e.spec, args.yes, args.quiet))
        except OSError as e:  # a folder that cannot be made: nothing ran
            raise _os_error(e, "--output") from None
    if args.threads is None:
        from .training import resolve_device, small_model_cpu_threads

        config = experiment.spec.config.resolve()
        threads = small_model_cpu_threads(config.model)
        if threads is not None and resolve_device(config.device).type == "cpu":
            import torch

            torch.set_num_threads(threads)
    # SIGTERM (e.g. the app's Stop button) ends the run like Ctrl-C: status 'interrupted', resumable.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    from .executors import SequentialExecutor

    bars = _Bars(not args.quiet, parallel=not isinstance(executor, SequentialExecutor))
    units = experiment.unfinished_units()

    started = []

    def report(event):
        if event.kind == "start":  # said once the run holds its lock (a refusal before stays one line)
            started.append(True)
            print(f"run folder: {experiment.run_dir} ({len(units)} unit(s) to run: "
                  f"{executor.describe(experiment, units)})", file=sys.stderr, flush=True)
        if event.kind == "repair":  # always said, even with --quiet: the user should know what changed
            print(f"recomputing {event.message}", file=sys.stderr, flush=True)
        bars(event)

    try:
        experiment.run(report, executor=executor)
    except TavaalError as e:
        bars.close()
        if not started:  # refused before anything ran (busy, or a record folder leaving the run): exit 2
            print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
        # a user-fixable failure during the run (also recorded in status.json)
        print(f"{PROG}: error: {_one_line(e)} (run folder: {experiment.run_dir})", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        bars.close()
        print(f"{PROG}: interrupted; resume with: {PROG} run --resume {experiment.run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bars.close()
        signal.signal(signal.SIGTERM, previous)
    repaired = store.read_status(experiment.run_dir).get("repaired") or []
    if repaired:
        print(f"recomputed {len(repaired)} damaged record(s); the run is whole again", file=sys.stderr)
    _print_summary(experiment.run_dir)
    print(experiment.run_dir)
    return 0


def _print_summary(run_dir):
    from . import statistics, store

    metrics = store.load_metrics(run_dir)
    if metrics.empty:
        return
    try:
        methods = store.read_spec(run_dir)["methods"]
    except store.StoreError:
        methods = None
    final = statistics.final_summary(metrics, methods=methods)
    metric = statistics.metric_label(statistics.curve_metric(final))
    lines = [f"final stage ({int(final['labeled_count'].iloc[0])} labels): {metric} mean +- std over trials; "
             f"improvement over random (relative); paired t-test p"]
    setting = None
    for row in final.itertuples():
        if "setting_label" in final.columns and row.setting_label != setting:  # a sweep: grouped by setting
            setting = row.setting_label
            lines.append(f" {setting}:")
        std = "" if row.metric_std != row.metric_std else f" +- {row.metric_std:.4f}"
        imp = "" if row.improvement_mean != row.improvement_mean else f"  {row.improvement_mean:+.4f}"
        rel = "" if row.relative_improvement_mean != row.relative_improvement_mean \
            else f" ({100 * row.relative_improvement_mean:+.1f}%)"
        p = "" if row.p_value_vs_random != row.p_value_vs_random else f"  p={row.p_value_vs_random:.3g}"
        lines.append(f"  {row.method:<12} {row.metric_mean:.4f}{std}  (n={row.trials}){imp}{rel}{p}")
    print("\n".join(lines), file=sys.stderr)


def cmd_list(args) -> int:
    from pathlib import Path

    from . import store

    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UsageError(f"--output: {args.output} is a file, not a folder")
    runs = store.list_runs(args.output)
    if not runs:
        print(f"no runs in {args.output}")
        return 0
    header = f"{'name':<36} {'state':<12} {'dataset':<10} {'trials':>6} {'progress':>10}  methods"
    print(header)
    for r in runs:
        if r.broken:
            print(f"{r.name:<36} {'broken':<12} {r.error}")
        else:
            line = f"{r.name:<36} {r.state:<12} {r.dataset:<10} {r.trials:>6} {r.done:>5}/{r.total:<4}  {','.join(r.methods)}"
            if r.settings:
                line += f"  sweep: {len(r.settings)} settings of {', '.join(r.sweep)}"
            if r.state == "failed" and r.error:
                line += f"  ({r.error})"
            print(line)
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    try:
        files = export_run(args.run_dir, args.to)
    except OSError as e:
        raise _os_error(e, "--to") from None
    for f in files:
        print(f)
    return 0


def cmd_summary(args) -> int:
    import pandas as pd

    from . import statistics, store

    store.validated_spec(store.require_run_dir(args.run_dir))  # a crafted config.json is refused here too
    metrics = store.load_metrics(args.run_dir)
    if metrics.empty:
        print("no finished stages yet")
        return 0
    with pd.option_context("display.max_rows", 500, "display.width", 160, "display.float_format", "{:.4f}".format):
        print(statistics.learning_curve_frame(metrics).to_string(index=False))
        sig = statistics.significant_cases(metrics)
        print(f"\npaired t-tests with p < 0.05: {len(sig)}")
        if len(sig):
            print(sig.to_string(index=False))
        if statistics.has_settings(metrics):
            between = statistics.setting_tests(metrics)
            between = between[between["stage"] == between["stage"].max()] if len(between) else between
            print("\nsettings against each other at the last stage (paired t-tests by trial):")
            print(between.to_string(index=False) if len(between) else "(one setting so far)")
    return 0


def cmd_presets(args) -> int:
    from .presets import preset_summaries, preset_values

    summaries = preset_summaries()
    if args.name is not None:
        summaries = [p for p in summaries if p["name"] == args.name]
        if not summaries:
            from .presets import available_presets

            raise UsageError(f"preset: unknown preset {args.name!r}; choose one of: {', '.join(available_presets())}")
    for p in summaries:
        if p["error"]:
            print(f"{p['name']:<26} BROKEN: {p['error']}")
            continue
        print(f"{p['name']:<26} {p['dataset']:<9} {p['trials']} trials x {p['stages']} stages  "
              f"[{', '.join(p['methods'])}]  {p['description']}")
        if not args.brief:  # every value the preset sets or resolves to, and where it comes from
            for field, value, source in preset_values(p["name"]):
                print(f"    {field:<24} {value:<22} {source}")
            print()
    return 0


def _sweep_values(text: str) -> tuple[str, list]:
    from .audit import parse_assignment

    name, _ = parse_assignment(text.split(",", 1)[0])
    raw = text.split("=", 1)[1]
    values = [parse_assignment(f"{name}={v}")[1] for v in raw.split(",") if v.strip()]
    if not values:
        raise UsageError(f"--sweep {text!r}: give values, e.g. --sweep {name}=a,b")
    return name, values


def cmd_claims(args) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from . import audit

    names = [audit.get_claim(args.claim).name] if args.claim else list(audit.CLAIMS)
    overrides = dict(audit.parse_assignment(s) for s in args.set)
    sweeps = dict(_sweep_values(s) for s in args.sweep)
    if args.run is not None and (overrides or sweeps or args.seeds):
        raise UsageError("--run measures a saved run as it is; drop --set, --sweep and --seeds")
    if args.run is not None:
        from . import store

        store.require_run_dir(args.run)
    else:
        for name in names:  # refuse a bad --set before anything runs
            audit.setting_spec(audit.CLAIMS[name].setting, args.seeds, overrides)
    import torch

    torch.set_num_threads(args.threads or 1)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    bars = _Bars(not args.quiet)
    results, sweep_frames = [], []
    try:
        for name in names:
            if args.run is not None:
                result = audit.evaluate(name, args.run)
            else:
                result = audit.audit(name, args.seeds, overrides, progress=bars, fast=not args.sequential)
                bars.close()
                if sweeps:
                    sweep_frames.append(audit.sweep(name, sweeps, args.seeds, base=overrides, progress=bars,
                                                    fast=not args.sequential))
                    bars.close()
            results.append(result)
            _print_claim(result)
    except KeyboardInterrupt:
        bars.close()
        print(f"{PROG}: interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bars.close()
        signal.signal(signal.SIGTERM, previous)
    to = Path(args.to) if args.to else audit.audits_dir()
    to.mkdir(parents=True, exist_ok=True)
    stem = f"claims-{args.claim or 'all'}"
    from . import store

    table = pd.concat([r.parts_frame() for r in results], ignore_index=True)
    store.atomic_write(to / f"{stem}.csv", lambda f: table.to_csv(f, index=False))
    store.atomic_write_json(to / f"{stem}.json", [r.to_json() for r in results])
    written = [to / f"{stem}.csv", to / f"{stem}.json"]
    if sweep_frames:
        sweep = pd.concat(sweep_frames, ignore_index=True)
        print("\nclaim x setting (verdict, seeds where the ordering held):")
        with pd.option_context("display.width", 200, "display.max_colwidth", 40):
            print(audit.sweep_table(sweep).to_string(index=False))
        store.atomic_write(to / f"{stem}-sweep.csv", lambda f: sweep.to_csv(f, index=False))
        written.append(to / f"{stem}-sweep.csv")
    for path in written:
        print(path)
    return 0


def _fmt(mean, low, high) -> str:
    if mean != mean:
        return "-"
    return f"{mean:.3f}" if low != low else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _print_claim(result) -> None:
    claim = result.claim
    print(f"\n{claim.name} - {claim.title} ({claim.paper})\n  \"{claim.sentence}\"")
    print(f"  verdict: {result.verdict.upper()}  ({result.seeds} seeds; run folder {result.run_dir})")
    for p in result.parts:
        part = p.part
        if p.missing:
            print(f"  - {part.text}: not measured ({p.missing})")
            continue
        b = part.b if isinstance(part.b, str) else f"{part.b:g}"
        pv = "" if p.p_value != p.p_value else f", p={p.p_value:.3g}"
        counted = "stages without a significant difference" if part.kind == "no_difference" else "seeds"
        total = len(p.stages) if part.kind == "no_difference" else p.seeds
        print(f"  - {part.text}: {p.verdict} ({p.held}/{total} {counted}{pv})\n"
              f"      {part.metric}: {part.a} {_fmt(p.mean_a, *p.ci_a)} vs {b} {_fmt(p.mean_b, *p.ci_b)}")


COMMANDS = {"claims": cmd_claims, "run": cmd_run, "list": cmd_list, "export": cmd_export, "summary": cmd_summary, "presets": cmd_presets}


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else ""


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"give a command: {', '.join(COMMANDS)} (see {PROG} --help)")
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, TavaalError) as e:
        # Refused before anything ran: a bad value (ConfigError), absent dataset files
        # (DatasetUnavailable), an unreadable run folder (StoreError).
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # a folder that cannot be made, a full disk ...: one line, not a traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
