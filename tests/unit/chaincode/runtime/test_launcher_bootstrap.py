"""The bootstrap a locally launched Python chaincode starts through: the shim's per-message
logging costs nothing at the default level, and is all there when asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from heddle.chaincode.runtime.launcher import _BOOTSTRAP

# runs inside the bootstrap in place of a chaincode's main.py; prints what it saw as JSON
_PROBE = textwrap.dedent(
    """
    import json, logging
    from fabric_chaincode_python.fabric_shim import handler
    from fabric_protos.peer import proposal_pb2

    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())
    logging.getLogger("asyncio").addHandler(Keep())
    handler.LOGGER.warning("-->> Look out!")
    handler.LOGGER.warning("a real warning %s", 1)
    handler.LOGGER.info("an info line")
    signed = proposal_pb2.SignedProposal(proposal_bytes=b"proposal-bytes", signature=b"sig")
    print(json.dumps({"records": records, "formatted": f"{signed}"}))
    """
)


def _run(tmp_path, level: str | None) -> dict:
    script = tmp_path / "main.py"
    script.write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CORE_CHAINCODE_LOGGING_SHIM"}
    if level is not None:
        env["CORE_CHAINCODE_LOGGING_SHIM"] = level
    out = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("level", [None, "warning", "ERROR"])
def test_default_level_drops_per_message_noise_before_it_costs(tmp_path, level):
    seen = _run(tmp_path, level)
    assert "-->> Look out!" not in seen["records"]
    assert "an info line" not in seen["records"]
    assert seen["formatted"] == "<SignedProposal>"  # not rendered as text for a disabled INFO line
    if level != "ERROR":
        assert seen["records"] == ["a real warning 1"]  # other warnings still get through
    else:
        assert seen["records"] == []


@pytest.mark.parametrize("level", ["info", "DEBUG"])
def test_info_level_keeps_the_shim_logging(tmp_path, level):
    seen = _run(tmp_path, level)
    assert "an info line" in seen["records"]
    assert "a real warning 1" in seen["records"]
    assert "proposal_bytes" in seen["formatted"]  # the proposal is logged in full, as the shim means
