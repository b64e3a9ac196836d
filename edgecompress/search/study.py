"""The study: workers that ask Optuna for a trial, run it, and tell Optuna what it measured.

- ``--trials N`` is the study's total: a worker counts the trials that finished or are running
  (interrupted ones excepted) under the storage's count lock, and asks for one more only below
  N. Rerunning the same command therefore continues the count; finished trials never rerun.
- A trial interrupted by Ctrl-C / SIGTERM is marked failed ``interrupted`` and its values are
  queued again, so the next run retries exactly that point. A worker killed outright (SIGKILL,
  a lost machine) leaves its trial RUNNING: the next search finds it stale (its process gone on
  this host, or no heartbeat for ``STALE_S``) and does the same.
- The same values twice (a small categorical space, a queued point) reuse the first trial's
  measurements instead of running again.
- Objectives are minimised; the recipe's gates are constraints (<= 0 when passed) that NSGA-II
  and TPE use to prefer feasible trials. A trial that ran but failed a gate is COMPLETE and
  infeasible (its numbers still guide the sampler); a failed step is FAIL; a combination that is
  not a valid recipe is PRUNED. Each records its reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgecompress.errors import CompressError, Interrupted, RecipeError
from edgecompress.progress import log, setup_logging
from edgecompress.recipe import GatesSection, parse_recipe
from edgecompress.report.report import atomic_write
from edgecompress.search import space
from edgecompress.search import trial as trial_mod
from edgecompress.search.schema import AddressError, SamplerName, canonical
from edgecompress.search.storage import StorageSpec, count_lock, open_storage

HEARTBEAT_S = 30.0
STALE_S = 300.0  # a RUNNING trial with no heartbeat for this long is abandoned
WORKER_STOP_S = 60.0
POLL_S = 2.0


@dataclass(frozen=True)
class Job:
    """What every worker needs (picklable: workers are spawned processes)."""

    data: dict  # the base recipe, search section included
    source: str  # the recipe's path, for messages
    recipe_dir: str  # the recipe's folder (its relative paths resolve from there)
    out: str
    storage: StorageSpec
    study_name: str
    trials: int
    deadline: float | None  # time.time() after which no trial starts
    quiet: bool = False


def gate_kinds(recipe) -> list[str]:
    limits = recipe.gates.model_dump()
    return [k for k in GatesSection.model_fields if k != "baseline_report" and limits.get(k)]


def make_sampler(recipe, seed: int):
    """NSGA-II for several objectives, TPE for one (``search.sampler`` overrides)."""
    import optuna

    section = recipe.search  # constraints: set on each trial (set_constraints)
    name = section.sampler
    if name == SamplerName.auto:
        name = SamplerName.nsga2 if len(section.objectives) > 1 else SamplerName.tpe
    if name == SamplerName.nsga2:
        return optuna.samplers.NSGAIISampler(population_size=section.population_size, seed=seed)
    if name == SamplerName.tpe:
        return optuna.samplers.TPESampler(n_startup_trials=section.startup_trials, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # random, and grid after its queued points


def set_constraints(trial, kinds: list[str], values: list[float]) -> None:
    """The gate constraints on the trial (<= 0: passed), where NSGA-II and TPE read them
    (Optuna >= 5: ``Trial.set_constraint``), and as a user attribute for the reports."""
    trial.set_user_attr("constraints", values)
    for kind, value in zip(kinds, values, strict=True):
        trial.set_constraint(kind, value)


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def counted(trials) -> int:
    """Trials toward ``--trials``: finished or running, except interrupted ones."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        or (t.state == TrialState.FAIL and t.user_attrs.get("status") != "interrupted")
    )


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _retry(study, frozen) -> None:
    study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number})


def sweep_stale(study, now: float | None = None, host: str | None = None) -> list[int]:
    """Mark abandoned RUNNING trials failed ``interrupted`` and queue their values again;
    returns their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    now, host = now or time.time(), host or socket.gethostname()
    storage, swept = study._storage, []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        a = t.user_attrs
        beat = a.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else now)
        gone = a.get("host") == host and not _pid_alive(a.get("pid"))
        if not gone and now - beat < STALE_S:
            continue
        why = "its worker is gone" if gone else f"no heartbeat for {now - beat:.0f} s"
        try:
            storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            storage.set_trial_user_attr(t._trial_id, "reason", f"interrupted ({why}); retried")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # it finished meanwhile, or another search swept it
        _retry(study, t)
        swept.append(t.number)
    return swept


class Heartbeat:
    """Stamps the running trial every HEARTBEAT_S, so other machines can tell it is alive."""

    def __init__(self, interval: float = HEARTBEAT_S):
        self.interval, self.trial = interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            current = self.trial
            if current is not None:
                with contextlib.suppress(Exception):  # the trial may have just finished
                    current.set_user_attr("heartbeat", time.time())


def _values_line(values: dict) -> str:
    def short(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{a}={short(v)}" for a, v in values.items())


def _result_line(number: int, worker: int, attrs: dict) -> str:
    m = attrs.get("measurements") or {}
    parts = [f"trial {number} (worker {worker}): {attrs['status']}"]
    if attrs.get("seconds") is not None:
        parts[0] += f" in {attrs['seconds']:.0f} s"
    if m:
        parts.append(
            f"${m.get('usd_per_million') or 0:.4f}/M, drop {m.get('accuracy_drop') or 0:.4f}, "
            f"p95 {m.get('p95_ms') or 0:.3f} ms"
        )
    if attrs.get("duplicate_of") is not None:
        parts.append(f"same values as trial {attrs['duplicate_of']}")
    if attrs.get("reason") and attrs["status"] != "passed":
        parts.append(attrs["reason"][:300])
    return " | ".join(parts)


class Worker:
    """One worker's loop against the study; ``execute`` runs a trial recipe (trial.execute)."""

    def __init__(self, job: Job, index: int, execute=None):
        import optuna

        quiet_optuna()
        self.job, self.index = job, index
        self.execute = execute or trial_mod.execute
        self.recipe = parse_recipe(job.data, job.source, Path(job.recipe_dir))
        self.params = self.recipe.search_params
        self.objectives = [o.value for o in self.recipe.search.objectives]
        self.kinds = gate_kinds(self.recipe)
        self.out = Path(job.out)
        storage = open_storage(job.storage)
        probe = optuna.load_study(study_name=job.study_name, storage=storage)
        seed = self.recipe.search.seed
        seed = (self.recipe.seed if seed is None else seed) + 1000 * index + len(probe.trials)
        self.study = optuna.load_study(
            study_name=job.study_name, storage=storage, sampler=make_sampler(self.recipe, seed)
        )
        self.parent = os.getppid()
        self.check_parent = False  # spawned workers stop when the search that started them dies

    def _next(self):
        """The next trial, or None when the study has its trials (or time is up)."""
        with count_lock(self.job.storage):
            if self.job.deadline is not None and time.time() >= self.job.deadline:
                return None
            if counted(self.study.get_trials(deepcopy=False)) >= self.job.trials:
                return None
            trial = self.study.ask()
            for key, value in (
                ("host", socket.gethostname()),
                ("pid", os.getpid()),
                ("worker", self.index),
                ("heartbeat", time.time()),
            ):
                trial.set_user_attr(key, value)
            return trial

    def run(self) -> int:
        """Trials until the study has enough; returns how many this worker ran."""
        done = 0
        with Heartbeat() as beat:
            while not self.check_parent or os.getppid() == self.parent:
                trial = self._next()
                if trial is None:
                    break
                beat.trial = trial
                try:
                    self.run_trial(trial)
                except BaseException as exc:
                    self._interrupted(trial, exc)
                    raise
                finally:
                    beat.trial = None
                done += 1
        return done

    def _interrupted(self, trial, exc: BaseException) -> None:
        """The trial stopped with its worker: an interruption queues its values again; an
        error in the search itself is recorded (and the worker stops)."""
        from optuna.trial import TrialState

        interrupted = isinstance(exc, KeyboardInterrupt | Interrupted)
        with contextlib.suppress(Exception):
            if interrupted:
                trial.set_user_attr("status", "interrupted")
                trial.set_user_attr("reason", f"interrupted ({exc or 'Ctrl-C'}); retried")
            else:
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("reason", f"search error: {type(exc).__name__}: {exc}")
            self.study.tell(trial, state=TrialState.FAIL)
            if interrupted:
                _retry(self.study, self.study.get_trials(deepcopy=False)[trial.number])

    def _duplicate(self, key: str, number: int):
        """A trial with the same values whose outcome can be reused, else None. One still
        running (started earlier, heartbeat fresh) is waited for, so parallel workers that
        draw the same point run it once."""
        from optuna.trial import TrialState

        while True:
            same = [
                t
                for t in self.study.get_trials(deepcopy=False)
                if t.number != number
                and t.user_attrs.get("key") == key
                and t.user_attrs.get("status") != "interrupted"
            ]
            done = [t for t in same if t.state.is_finished()]
            if done:
                return done[0]
            now = time.time()
            running = [
                t
                for t in same
                if t.state == TrialState.RUNNING
                and t.number < number
                and now - t.user_attrs.get("heartbeat", now) < STALE_S
            ]
            if not running:
                return None
            time.sleep(POLL_S)

    def run_trial(self, trial) -> None:
        number = trial.number
        values = space.suggest(trial, self.params)
        key = canonical(values)
        name = f"{self.recipe.name or Path(self.job.source).stem}-trial-{number:04d}"
        for k, v in (("values", values), ("key", key)):
            trial.set_user_attr(k, v)
        log.info("trial %d (worker %d): %s", number, self.index, _values_line(values))
        folder = self.out / "trials" / f"{number:04d}"
        try:  # values that contradict each other (export: [tflite] and export[0].onnx...)
            data = space.trial_recipe(self.job.data, self.params, values, name)
            runnable = space.runnable(data, self.recipe.base_dir)
            parse_recipe(runnable, str(folder / "recipe.yaml"), folder)
        except (AddressError, RecipeError) as exc:
            outcome = trial_mod.Outcome("invalid", str(exc).split(": ", 1)[-1])
            self._tell(trial, outcome, "")
            return
        trial.set_user_attr("recipe", data)
        original = self._duplicate(key, number)
        if original is not None:
            self._tell_copy(trial, original)
            return
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "recipe.yaml", yaml.safe_dump(runnable, sort_keys=False))
        timeout_s = self.recipe.search.trial_timeout_s
        outcome = self.execute(folder / "recipe.yaml", folder / "run", timeout_s)
        self._tell(trial, outcome, (folder / "run").relative_to(self.out).as_posix())

    def _tell(self, trial, outcome, run_dir: str) -> None:
        from optuna.trial import TrialState

        attrs = {
            "status": outcome.status,
            "reason": outcome.reason,
            "measurements": outcome.measurements,
            "gates": outcome.gates,
            "seconds": outcome.seconds,
            "run_dir": run_dir if outcome.measured else None,
        }
        values = None
        if outcome.measured:
            values = [outcome.measurements.get(o) for o in self.objectives]
            missing = [o for o, v in zip(self.objectives, values, strict=True) if v is None]
            if missing:
                attrs["status"] = "failed"
                attrs["reason"] = f"objective(s) not measured: {', '.join(missing)}"
                values = None
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if values is not None:
            set_constraints(trial, self.kinds, trial_mod.constraints(outcome.gates, self.kinds))
        if values is not None:
            self.study.tell(trial, values)
        else:
            state = TrialState.PRUNED if attrs["status"] == "invalid" else TrialState.FAIL
            self.study.tell(trial, state=state)
        log.info("%s", _result_line(trial.number, self.index, attrs))

    def _tell_copy(self, trial, original) -> None:
        from optuna.trial import TrialState

        keep = ("status", "reason", "measurements", "gates", "run_dir")
        attrs = {k: original.user_attrs.get(k) for k in keep}
        attrs["seconds"], attrs["duplicate_of"] = 0.0, original.number
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if original.user_attrs.get("constraints") is not None:
            set_constraints(trial, self.kinds, original.user_attrs["constraints"])
        if original.state == TrialState.COMPLETE:
            self.study.tell(trial, list(original.values))
        else:
            self.study.tell(trial, state=original.state)
        log.info("%s", _result_line(trial.number, self.index, attrs))


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def worker_main(job: Job, index: int) -> None:
    """A spawned worker process: SIGTERM / SIGHUP unwind like Ctrl-C (the running trial is
    stopped, marked interrupted and queued again)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)
    setup_logging(quiet=job.quiet)
    try:
        worker = Worker(job, index)
        worker.check_parent = True
        worker.run()
    except (KeyboardInterrupt, Interrupted):
        raise SystemExit(130) from None
    except CompressError as exc:
        log.error("worker %d: %s", index, exc)
        raise SystemExit(exc.exit_code) from None


def run_workers(job: Job, workers: int) -> list[int]:
    """``workers`` spawned processes against the study (a single worker runs in this process);
    their exit codes."""
    import multiprocessing

    if workers <= 1:
        Worker(job, 0).run()
        return [0]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=worker_main, args=(job, i), name=f"search-worker-{i}")
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:
        for p in procs:  # interrupted: stop every worker (each stops its trial)
            if p.is_alive():
                p.terminate()
        deadline = time.time() + WORKER_STOP_S
        for p in procs:
            p.join(max(0.0, deadline - time.time()))
            if p.is_alive():
                p.kill()
                p.join()
    return [p.exitcode for p in procs]


def open_study(job: Job, recipe, fingerprint: str):
    """Create the study (or load it to resume); checks it belongs to this recipe."""
    import optuna

    quiet_optuna()
    storage = open_storage(job.storage)
    directions = ["minimize"] * len(recipe.search.objectives)
    study = optuna.create_study(
        storage=storage, study_name=job.study_name, directions=directions, load_if_exists=True
    )
    owner = study.user_attrs.get("fingerprint")
    if owner is None:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("objectives", [o.value for o in recipe.search.objectives])
        study.set_user_attr("recipe", job.source)
        section = recipe.search
        for point in space.enqueue_points(recipe.search_params, section.start, section.sampler):
            study.enqueue_trial(point, skip_if_exists=True)
    elif owner != fingerprint:
        raise RecipeError(
            f"--study {job.study_name}: that study in {job.storage.shown} was made from another "
            f"recipe (fingerprint {owner[:12]}, this one {fingerprint[:12]}); choose another "
            "--study or storage"
        )
    return study
