"""`heddle demo heart-disease`: the network, the trusted-compute services and the
cross-hospital story in proxy mode (every request and result goes through the ledger)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from heddle.network.local import LocalNetwork
from heddle.network.tcf_services import (
    SERVICES,
    running_services,
    start_tcf_services,
    stop_tcf_services,
    tcf_paths,
)


def _say(step: str) -> None:
    print(f"\n== {step}", flush=True)


def _line(text: str) -> None:
    print(text, flush=True)


def run_heart_disease_demo(data_dir: str | Path, *, org: int = 2, bind: str | None = None) -> int:
    """Use (or start) the network in ``data_dir`` and its TCF services, then tell the story.

    The story's client is ``org``'s User1 (Org2 by default); the worker's connector acts
    as Org1's User1, so requester and worker are different ledger identities."""
    from heddle.tcf.proxy import LedgerTransport
    from heddle.tcf.story import ledger_story

    data = Path(data_dir).absolute()
    started = time.monotonic()
    nodes_up = [k for k in LocalNetwork.running_pids(data) if k not in SERVICES]
    if not nodes_up:
        from heddle.network.up import up

        _say("heddle up: orderer, two peers, channel mychannel (this demo uses a 500 ms batch timeout)")
        up(data, batch_timeout="500ms")
    services_up = running_services(data)
    if set(services_up) == set(SERVICES):
        _say(f"Using the trusted-compute services running from {data}")
    else:
        if services_up:  # a partial set (one crashed): restart them together
            stop_tcf_services(data)
        net = LocalNetwork.from_description(data, json.loads((data / "network.json").read_text()))
        _say("Starting the trusted-compute services: chaincode 'tcf', a singleton worker, the connector")
        kwargs = {"bind": bind} if bind else {}
        services = start_tcf_services(net, data, **kwargs)
        _line(f"   listener {services.url} (direct mode); logs in {data / 'logs'}/tcf-*.log")
    _, platform = tcf_paths(data)
    _say("The heart-disease story, in proxy mode: every request, result and receipt is a ledger transaction")
    with LedgerTransport.connect(data, org=org - 1) as transport:
        summary = ledger_story(transport, str(platform), say=_line)
    if summary["leaked"]:
        _line(f"ERROR: plaintext found on the ledger ({summary['leaked']} matches)")
        return 1
    _say(f"Done in {time.monotonic() - started:.0f} s")
    _line(
        "   Try: heddle tcf workorder submit --workload heart-disease-eval "
        '--in "32 1 1 156 132 125 1 95 1 0 1 1 3 1" '
        f"--ledger {data} --platform {platform}"
    )
    _line(f"   Stop everything with: heddle down --data {data}")
    return 0


__all__ = ["run_heart_disease_demo"]
