"""Go-style durations ("2s", "500ms", "1m30s") and byte sizes ("2 MB", "512 KB").

configtx.yaml carries both as strings and the config block keeps BatchTimeout and
the raft TickInterval as Go duration strings, so we parse them the way Go does.
"""

from __future__ import annotations

import re

from heddle.channelconfig.errors import ConfigError

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; ConfigError if it is not one."""
    if not isinstance(text, str):
        raise ConfigError(f"not a duration: {text!r}")
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ConfigError(f"not a duration: {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ConfigError(f"not a duration: {text!r} (expected e.g. '2s', '500ms', '1m30s')")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """A Go duration string for a number of seconds, as short as it can be written."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    if abs(ms / 1000 - seconds) < 1e-9:
        if ms % 1000 == 0:
            return f"{ms // 1000}s"
        return f"{ms}ms"
    return f"{round(seconds * 1e9)}ns"


def parse_size(value: object) -> int:
    """Bytes in an integer or a size string like "2 MB" (K, M, G are powers of 1024)."""
    if isinstance(value, bool):
        raise ConfigError(f"not a byte size: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = m.group(2).upper()
            return int(m.group(1)) * _SIZE_UNITS[unit]
    raise ConfigError(f"not a byte size: {value!r} (expected e.g. 10485760, '10 MB', '512 KB')")
