"""Reading Fabric-style YAML node configuration with errors that name the bad key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A config file is missing, unreadable, or has a bad key."""


class YamlConfig:
    """Dotted-key access to a YAML document, with paths resolved against its folder.

    Environment variables override keys the way Fabric's do: ``CORE_PEER_ADDRESS`` overrides
    ``peer.address`` in core.yaml (prefix CORE), ``ORDERER_GENERAL_LISTENPORT`` overrides
    ``General.ListenPort`` in orderer.yaml (prefix ORDERER).
    """

    def __init__(self, data: dict, source: Path, env_prefix: str):
        self.data = data
        self.source = source
        self.base_dir = source.parent
        self.env_prefix = env_prefix

    @classmethod
    def load(cls, path: str | os.PathLike, env_prefix: str) -> YamlConfig:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError as exc:
            raise ConfigFileError(f"{p}: file not found") from exc
        except yaml.YAMLError as exc:
            raise ConfigFileError(f"{p}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigFileError(f"{p}: top level must be a mapping")
        return cls(data, p.resolve(), env_prefix)

    def _env(self, key: str) -> str | None:
        name = self.env_prefix + "_" + key.replace(".", "_").upper()
        return os.environ.get(name)

    def get(self, key: str, default: Any = None) -> Any:
        env = self._env(key)
        if env is not None:
            return env
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict):
                return default
            # Fabric's config keys are case-insensitive
            match = next((k for k in node if str(k).lower() == part.lower()), None)
            if match is None:
                return default
            node = node[match]
        return default if node is None else node

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None or value == "":
            raise ConfigFileError(f"{self.source.name}: {key} is required")
        return value

    def get_int(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigFileError(f"{self.source.name}: {key} must be an integer, got {value!r}") from exc

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key, default)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise ConfigFileError(f"{self.source.name}: {key} must be true or false, got {value!r}")

    def get_path(self, key: str, default: str | None = None) -> Path | None:
        value = self.get(key, default)
        if value in (None, ""):
            return None
        p = Path(os.path.expandvars(os.path.expanduser(str(value))))
        return p if p.is_absolute() else (self.base_dir / p)

    def get_paths(self, key: str) -> list[Path]:
        value = self.get(key)
        if value in (None, ""):
            return []
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        out = []
        for v in value:
            p = Path(os.path.expandvars(str(v)))
            out.append(p if p.is_absolute() else self.base_dir / p)
        return out
