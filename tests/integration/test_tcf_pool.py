"""A KME + WPE worker pool through real processes, and the KME's refusal of a foreign WPE."""

import asyncio

import pytest

from heddle.tcf.client import DirectTransport, TcfClient
from heddle.tcf.processes import TcfNode
from heddle.tcf.story import EXAMPLES, allowed_measurements
from heddle.tcf.worker_host import WorkerPool
from heddle.tee import Enclave, EnclaveError, VerificationPolicy, VirtualPlatform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_pool_processes_work_orders_with_endorsed_wpes(tmp_path):
    node = TcfNode(tmp_path, pool=2)
    node.start_listener()
    try:
        node.start_worker()
        client = TcfClient(
            DirectTransport(node.url),
            policy=VerificationPolicy.development(allowed_measurements()),
            verifiers=[VirtualPlatform(node.platform).verifier()],
        )
        worker = client.select_worker()
        keys = set()
        for example, expected in zip(EXAMPLES, ("47%", "71%"), strict=True):
            outcome = client.run("heart-disease-eval", [example.encode()], worker=worker)
            assert outcome.text() == f"You have a {expected} risk of heart disease"
            keys.add(outcome.result["extVerificationKey"])
        assert len(keys) == 2  # round robin over two WPEs, each endorsed by the KME
    finally:
        node.stop()
    log = (tmp_path / "worker.log").read_text()
    assert log.count("joined the pool") == 2


def test_kme_refuses_a_wpe_whose_measurement_it_does_not_allow(tmp_path):
    platform = VirtualPlatform.ensure(tmp_path / "platform")
    kme_app, wpe_app = WorkerPool.applications(tmp_path)
    foreign = tmp_path / "foreign_wpe.py"
    foreign.write_bytes(wpe_app.read_bytes() + b"\n# a different build\n")

    async def main():
        async with await Enclave.start(kme_app, platform=platform) as kme:
            await kme.call("tcf.init", b"")
            async with await Enclave.start(foreign, platform=platform) as wpe:
                with pytest.raises(EnclaveError, match="kme.register_wpe failed: PermissionError"):
                    await WorkerPool.join(kme, wpe)
                with pytest.raises(EnclaveError, match="kme.preprocess failed: PermissionError"):
                    await kme.call("kme.preprocess", b'{"wpeId": "00", "params": {}}')
            async with await Enclave.start(wpe_app, platform=platform) as wpe:
                assert len(await WorkerPool.join(kme, wpe)) == 64

    asyncio.run(main())
