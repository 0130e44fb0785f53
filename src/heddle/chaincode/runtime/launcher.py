"""Starting a Python chaincode package as a local chaincode server.

fabric-chaincode-python runs only as a server (chaincode-as-a-service), so the peer
starts the package's entry script with CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS set to
a fresh Unix socket (``unix:/tmp/heddle-cc-*.sock``), waits until it listens, and then
dials it like any service.
The entry script is ``main.py`` in the code folder, or its only top-level ``.py`` file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from heddle.chaincode.runtime.target import ChaincodeError, ChaincodeTarget

log = logging.getLogger(__name__)

# peer TLS settings the shim would pick up from the environment; a local process is plain loopback
_SCRUBBED_ENV = ("CORE_TLS_CLIENT_KEY_PATH", "CORE_TLS_CLIENT_CERT_PATH", "CORE_PEER_TLS_ROOTCERT_FILE")
_LOG_TAIL_BYTES = 2000

# Runs the entry script after setting the shim's log level from CORE_CHAINCODE_LOGGING_SHIM
# (Fabric's core.yaml chaincode.logging.shim, default warning). fabric-chaincode-python
# configures DEBUG logging on import and logs every message at INFO, plus a WARNING per
# message ("-->> Look out!"): under load that logging was most of a chaincode's CPU. The
# per-message WARNING and the eager text rendering of each proposal for an INFO line are cut
# off before they cost anything (see the comments in the script). It also
# raises the cyclic collector's thresholds, as the peer does (heddle.common.process.tune_gc).
# Written for any interpreter (no heddle import in the chaincode process).
_BOOTSTRAP = """
import gc, logging, os, runpy, sys
gc.set_threshold(100_000, 20, 50)  # as the peer does: default thresholds cost ~10% of CPU under load
level = os.environ.get("CORE_CHAINCODE_LOGGING_SHIM", "warning").upper()
level = level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "WARNING"
try:
    import fabric_chaincode_python.fabric_shim.logging  # noqa: F401  (sets DEBUG on import)
except ImportError:
    pass
for name in ("", "asyncio"):
    logging.getLogger(name).setLevel(level)
try:
    from fabric_chaincode_python.fabric_shim import handler as _shim_handler
    class _ShimLog(logging.LoggerAdapter):
        # the shim warns "-->> Look out!" on every message; building that record cost more
        # than a filter dropping it saves, so it is dropped before a record exists
        def warning(self, msg, *args, **kwargs):
            if msg != "-->> Look out!":
                self.logger.warning(msg, *args, **kwargs)
    _shim_handler.LOGGER = _ShimLog(_shim_handler.LOGGER, {})
    if logging.getLogger("asyncio").getEffectiveLevel() > logging.INFO:
        # and it renders every incoming SignedProposal as text for an INFO line, whether INFO
        # is on or not (an f-string): above INFO, that rendering is skipped
        from fabric_protos.peer import proposal_pb2
        proposal_pb2.SignedProposal.__format__ = (
            lambda self, spec: object.__format__(self, spec) if spec else "<SignedProposal>"
        )
except ImportError:
    pass
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
"""


def entry_script(code_dir: Path) -> Path:
    main = code_dir / "main.py"
    if main.is_file():
        return main
    scripts = sorted(p for p in code_dir.glob("*.py") if not p.name.startswith("_"))
    if len(scripts) == 1:
        return scripts[0]
    raise ChaincodeError(
        f"python chaincode in {code_dir} needs a main.py (or exactly one top-level .py file) to start"
    )


class ChaincodeProcess:
    """One running chaincode server process."""

    def __init__(self, target: ChaincodeTarget, log_dir: Path, python: str = sys.executable):
        if target.code_dir is None:
            raise ChaincodeError(f"chaincode {target.name}: process target without a code folder")
        self.target = target
        self.python = python
        self.log_path = log_dir / f"{_file_name(target.key)}.log"
        self.address = ""
        self._socket: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def start(self, timeout: float) -> str:
        """Start the server and wait until it accepts connections; returns its address."""
        code_dir = self.target.code_dir
        assert code_dir is not None
        script = entry_script(code_dir)
        # A Unix socket, not loopback TCP: every shim message is a write on each side, and
        # a Unix socket write costs both processes less system time than a TCP one.
        self._socket = Path(tempfile.gettempdir()) / f"heddle-cc-{os.urandom(6).hex()}.sock"
        self.address = f"unix:{self._socket}"
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(
            CHAINCODE_ID=self.target.package_id or self.target.name,
            CHAINCODE_SERVER_ADDRESS=self.address,
            CORE_CHAINCODE_ID_NAME=self.target.package_id or self.target.name,
            PYTHONPATH=os.pathsep.join(filter(None, [str(code_dir), env.get("PYTHONPATH", "")])),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.setdefault("CORE_CHAINCODE_LOGGING_SHIM", "warning")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.python,
                "-c",
                _BOOTSTRAP,
                str(script),
                cwd=code_dir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        log.info("started chaincode %s (pid %d) on %s", self.target.name, self.proc.pid, self.address)
        await self._wait_listening(timeout)
        return self.address

    async def _wait_listening(self, timeout: float) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.proc.returncode is not None:
                raise ChaincodeError(
                    f"chaincode {self.target.name}: process exited with code {self.proc.returncode} "
                    f"before listening on {self.address}{self.log_tail()}"
                )
            try:
                _, writer = await asyncio.open_unix_connection(str(self._socket))
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise ChaincodeError(
                        f"chaincode {self.target.name}: process did not listen on {self.address} "
                        f"within {timeout:g}s{self.log_tail()}"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def exit_code(self, wait: float = 0.0) -> int | None:
        """The exit code, waiting up to ``wait`` seconds for the process to end."""
        if self.proc is None:
            return None
        if self.proc.returncode is None and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), wait)
        return self.proc.returncode

    async def stop(self, grace: float = 3.0) -> None:
        try:
            await self._stop(grace)
        finally:
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.unlink()

    async def _stop(self, grace: float) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
                tail = f.read().decode("utf-8", errors="replace").strip()
        except OSError:
            return ""
        return f"; log {self.log_path} ends with:\n{tail}" if tail else ""


def _file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)
