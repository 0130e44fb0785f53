"""Measured enclave applications: one file holding every TCF module that runs inside.

A virtual enclave measures exactly one application file (plus heddle's enclave
runtime). So that the measurement covers all the TCF code that touches secrets, the
worker application is built as a bundle: the sources of the bundled modules, embedded
as strings and installed under their own names when the enclave loads, followed by
the entry module (``heddle/tcf/enclave/<name>.py``) and its configuration. Nothing
else from heddle is importable inside: the stub packages have no search path, so an
import of an unbundled heddle module fails instead of reading unmeasured code.

The bundle is deterministic: the same sources and configuration give the same bytes,
hence the same measurement, on every machine (``measurement(name)``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from heddle.tee.host import expected_measurement

BUNDLED = (
    "heddle.tcf.codes",
    "heddle.tcf.crypto",
    "heddle.tcf.schema",
    "heddle.tcf.workloads",
    "heddle.tcf.processor",
)
APPLICATIONS = ("worker", "kme", "wpe")
_SHARED_ENTRY = "heddle.tcf.enclave.worker"  # the pool's enclaves reuse the worker's helpers
_SRC = Path(__file__).resolve().parent

_PRELUDE = """\
import sys as _sys
import types as _types

for _pkg in ("heddle", "heddle.tcf", "heddle.tcf.enclave"):
    _mod = _types.ModuleType(_pkg)
    _mod.__path__ = []
    _sys.modules[_pkg] = _mod
for _name, _source in _BUNDLED:
    _mod = _types.ModuleType(_name)
    _mod.__file__ = "<measured>/" + _name
    _sys.modules[_name] = _mod
    setattr(_sys.modules[_name.rpartition(".")[0]], _name.rpartition(".")[2], _mod)
    exec(compile(_source, _mod.__file__, "exec"), _mod.__dict__)
"""


def _module_source(name: str) -> str:
    rel = name.split(".", 1)[1].replace(".", os.sep) + ".py"
    return (_SRC.parent / rel).read_text("utf-8")


def build(name: str, config: dict[str, object] | None = None) -> bytes:
    """The bytes of enclave application ``name`` (worker, kme or wpe) with ``config``."""
    if name not in APPLICATIONS:
        raise ValueError(f"unknown enclave application {name!r} (one of {', '.join(APPLICATIONS)})")
    entry = f"heddle.tcf.enclave.{name}"
    names = [*BUNDLED, _SHARED_ENTRY] if name != "worker" else [*BUNDLED]
    names.append(entry)
    modules = [(m, _module_source(m)) for m in dict.fromkeys(names)]
    settings = repr(json.loads(json.dumps(config or {}, sort_keys=True)))
    parts = [
        f"# heddle TCF enclave application {name!r}: generated bundle, do not edit\n",
        "_BUNDLED = " + repr(modules) + "\n",
        _PRELUDE,
        f"from {entry} import CONFIG, setup  # noqa: F401\n",
        f"CONFIG.update({settings})\n",
    ]
    return "".join(parts).encode("utf-8")


def write(name: str, directory: str | os.PathLike[str], config: dict[str, object] | None = None) -> Path:
    """Write the bundle to ``directory/tcf_<name>.py`` and return its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"tcf_{name}.py"
    data = build(name, config)
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def measurement(name: str, config: dict[str, object] | None = None, *, directory: str | None = None) -> bytes:
    """The measurement an enclave running this bundle has (for verification policies)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return expected_measurement(write(name, directory or tmp, config))


__all__ = ["APPLICATIONS", "BUNDLED", "build", "measurement", "write"]
