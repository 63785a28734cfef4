"""P1's floor: the least any plan must do. Parse the manifest with libyaml, validate it with
jsonschema against the shipped schema, sha256 every script file (streaming). Nothing else.

    python benchmarks/floor_plan.py path/to/workers.yaml

It imports nothing from deployer (the schema is read from the repository's package copy).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "deployer" / "schemas" / "workers.schema.json"


def main(manifest_path: str) -> int:
    manifest = Path(manifest_path)
    data = yaml.load(manifest.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(data)
    digests = []
    for script in data["scripts"].values():
        with open(manifest.parent / script["path"], "rb") as stream:
            digests.append(hashlib.file_digest(stream, "sha256").hexdigest())
    print(f"{len(digests)} scripts hashed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
