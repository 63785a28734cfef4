"""Time child processes and read their peak memory; take medians of interleaved runs.

Each command runs under a tiny wrapper (``python -I -S``, about 10 MB) that spawns it, reaps it with
``os.wait4`` and reports that child's wall time and ``ru_maxrss``. The wrapper is needed because
Linux folds the RSS of the process that forked into the child's ``ru_maxrss`` at exec: spawned
straight from this process (tens of MB after generating a project), every child would report at
least this process's size. The wrapper's own start-up is outside the timed span.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path



def _console_script() -> tuple[str, ...]:
    """Exactly what the installed ``deployer`` console script runs, with this interpreter (no
    PATH lookup, no second install to pick up by mistake)."""
    entry = next((ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "deployer"), None)
    if entry is None:
        return (sys.executable, "-m", "deployer")
    return (sys.executable, "-c", f"import sys; from {entry.module} import {entry.attr}; sys.exit({entry.attr}())")


DEPLOYER = _console_script()


_WRAPPER = """
import os, sys, time
report, *command = sys.argv[1:]
start = time.perf_counter()
pid = os.posix_spawnp(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as stream:
    stream.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes


class BenchmarkError(Exception):
    """A measured command failed or printed something unexpected: the figures would lie."""


def run(command: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        expect: int = 0) -> Sample:
    """Run ``command`` once; its wall time covers spawn to exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".report") as report:
        subprocess.run([sys.executable, "-I", "-S", "-c", _WRAPPER, report.name, *command], cwd=cwd,
                       env=None if env is None else dict(env), stdin=subprocess.DEVNULL, stdout=out,
                       stderr=err, check=True)
        seconds, peak_kb, returncode = report.read().split()
        out.seek(0)
        err.seek(0)
        sample = Sample(float(seconds), int(peak_kb) / 1024, int(returncode), out.read(), err.read())
    if sample.returncode != expect:
        shown = " ".join(command)
        raise BenchmarkError(f"{shown} exited {sample.returncode} (expected {expect}):\n"
                             f"{sample.stderr.decode(errors='replace')[-2000:]}")
    return sample


def interleave(subjects: Mapping[str, Callable[[], Sample]], runs: int, *,
               warmup: int = 1) -> dict[str, list[Sample]]:
    """Run every subject once per round, ``runs`` rounds (after ``warmup`` uncounted rounds),
    alternating the order each round so drift on a shared machine hits all subjects alike."""
    samples: dict[str, list[Sample]] = {name: [] for name in subjects}
    order = list(subjects)
    for round_number in range(warmup + runs):
        for name in order if round_number % 2 == 0 else reversed(order):
            sample = subjects[name]()
            if round_number >= warmup:
                samples[name].append(sample)
    return samples


def median_seconds(samples: Sequence[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def peak_mb(samples: Sequence[Sample]) -> float:
    return max(s.peak_rss_mb for s in samples)


def compile_bytecode() -> None:
    """Compile deployer's modules once, as ``pip install`` does: with PYTHONDONTWRITEBYTECODE set
    (some CI images set it) an editable install would otherwise compile every module from source
    in every measured run, time no installed deployer spends."""
    import compileall

    import deployer

    compileall.compile_dir(Path(deployer.__file__).parent, quiet=1)
