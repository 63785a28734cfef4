"""Speed benchmarks for deployer (issue 4): ``python -m benchmarks`` from the repository root.

Not tests: nothing here runs in ``.ci/run``. ``generate`` writes synthetic projects,
``measure`` times child processes, ``goals`` holds P1-P4 and the growth check, ``peer``
drives wrangler for P4. See ``benchmarks/README.md``.
"""
