"""The orderer process: gRPC AtomicBroadcast, the admin (participation) endpoint, channels."""

from __future__ import annotations

import logging
import ssl
from concurrent.futures import ThreadPoolExecutor

import grpc
from aiohttp import web

from heddle.common.process import serve_until_signalled
from heddle.common.tls import GRPC_SERVER_OPTIONS, ListenError, listen
from heddle.msp import load_signing_identity
from heddle.orderer.broadcast import AtomicBroadcast
from heddle.orderer.config import OrdererNodeConfig
from heddle.orderer.participation import make_app
from heddle.orderer.registrar import Registrar

log = logging.getLogger(__name__)


class OrdererNode:
    def __init__(self, config: OrdererNodeConfig):
        self.config = config
        self.identity = load_signing_identity(config.local_msp_dir, config.local_msp_id)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="orderer-crypto")
        self.cluster = self._cluster() if config.cluster else None
        self.registrar = Registrar(config.ledger_dir, self.identity, self.pool, self.cluster)
        self._server: grpc.aio.Server | None = None
        self._cluster_server: grpc.aio.Server | None = None
        self._admin: web.AppRunner | None = None

    def _cluster(self):
        from heddle.orderer.consensus.raft import Cluster, ClusterService, ClusterTransport, FaultInjector

        cc = self.config.cluster
        faults = FaultInjector(self.config.ledger_dir / "cluster-faults.json")
        roots = [p.read_bytes() for p in cc.root_cas]
        transport = ClusterTransport(cc.client_cert.read_bytes(), cc.client_key.read_bytes(), roots, faults)
        return Cluster(transport, ClusterService(faults), self.config.wal_dir, self.config.snap_dir)

    async def _start_cluster(self) -> None:
        cc = self.config.cluster
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        server.add_generic_rpc_handlers([self.cluster.service.handler()])
        roots = b"".join(p.read_bytes() for p in cc.root_cas)
        creds = grpc.ssl_server_credentials(
            [(cc.server_key.read_bytes(), cc.server_cert.read_bytes())],
            root_certificates=roots,
            require_client_auth=True,
        )
        listen(server, cc.address, creds)
        await server.start()
        self._cluster_server = server
        log.warning("orderer cluster service on %s (mutual TLS)", cc.address)

    async def start(self) -> None:
        cfg = self.config
        if self.cluster is not None:
            await self._start_cluster()
        await self.registrar.start()
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        server.add_generic_rpc_handlers([AtomicBroadcast(self.registrar).handler()])
        listen(server, cfg.address, cfg.tls.server_credentials() if cfg.tls.enabled else None)
        await server.start()
        self._server = server
        if cfg.admin_listen and cfg.participation_enabled:
            host, _, port = cfg.admin_listen.rpartition(":")
            runner = web.AppRunner(make_app(self.registrar, cfg.participation_max_body))
            await runner.setup()
            self._admin = runner
            site = web.TCPSite(runner, host or "127.0.0.1", int(port), ssl_context=self._admin_ssl())
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(f"listen tcp {cfg.admin_listen} (Admin): {exc.strerror or exc}") from exc
        log.warning(
            "orderer %s serving on %s (TLS %s), admin on %s",
            cfg.local_msp_id,
            cfg.address,
            "on" if cfg.tls.enabled else "off",
            cfg.admin_listen,
        )

    def _admin_ssl(self) -> ssl.SSLContext | None:
        t = self.config.admin_tls
        if not t.enabled:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(t.cert), str(t.key))
        if t.client_auth_required:
            ctx.verify_mode = ssl.CERT_REQUIRED
            for p in t.client_root_cas:
                ctx.load_verify_locations(str(p))
        return ctx

    async def stop(self) -> None:
        if self._admin:
            await self._admin.cleanup()
        if self._server:
            await self._server.stop(grace=1)
        await self.registrar.stop()
        if self._cluster_server:
            await self._cluster_server.stop(grace=0.5)
        if self.cluster is not None:
            await self.cluster.transport.close()
        self.pool.shutdown(wait=False)


async def run(config: OrdererNodeConfig) -> None:
    await serve_until_signalled(OrdererNode(config))
