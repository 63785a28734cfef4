"""P4: one ``deployer apply`` of N workers against the fake vs N ``wrangler deploy`` runs."""
from __future__ import annotations

from pathlib import Path

from benchmarks.goals import Outcome


def p4_wrangler(workdir: Path, runs: int, scripts: int = 20) -> Outcome:
    return Outcome("P4 peer: wrangler", None, ["  not written yet"])
