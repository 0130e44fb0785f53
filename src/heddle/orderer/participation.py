"""The channel participation REST API (/participation/v1/channels), as Fabric's osnadmin uses it."""

from __future__ import annotations

import logging

from aiohttp import web

from heddle.orderer.registrar import JoinError, Registrar

log = logging.getLogger(__name__)
BASE = "/participation/v1/channels"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _info(registrar: Registrar, channel_id: str) -> dict:
    ch = registrar.get(channel_id)
    info = {
        "name": channel_id,
        "url": f"{BASE}/{channel_id}",
        "consensusRelation": "consenter",
        "status": "active",
        "height": ch.height if ch else 0,
    }
    status = getattr(ch.chain, "status", None) if ch else None
    if status is not None:
        info["raft"] = status()  # heddle's addition: this node's Raft id, leader, term, role
    return info


def make_app(registrar: Registrar, max_body: int = 1024 * 1024) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get(BASE)
    async def list_channels(request: web.Request) -> web.Response:
        channels = [{"name": c, "url": f"{BASE}/{c}"} for c in sorted(registrar.channels)]
        return web.json_response({"systemChannel": None, "channels": channels})

    @routes.get(BASE + "/{channel}")
    async def get_channel(request: web.Request) -> web.Response:
        cid = request.match_info["channel"]
        if registrar.get(cid) is None:
            return _error(404, f"channel {cid} does not exist")
        return web.json_response(_info(registrar, cid))

    @routes.post(BASE)
    async def join(request: web.Request) -> web.Response:
        ctype = request.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return _error(
                415, "unsupported Content-Type; expected multipart/form-data with a 'config-block' file"
            )
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body exceeds the maximum of {max_body} bytes")
        except ValueError as exc:
            return _error(400, f"cannot read form: {exc}")
        field = form.get("config-block")
        if field is None or not hasattr(field, "file"):
            return _error(400, "form has no 'config-block' file")
        data = field.file.read()
        try:
            channel = await registrar.join(data)
        except JoinError as exc:
            return _error(exc.http_status, str(exc))
        info = _info(registrar, channel.channel_id)
        return web.json_response(info, status=201, headers={"Location": info["url"]})

    @routes.delete(BASE + "/{channel}")
    async def remove(request: web.Request) -> web.Response:
        cid = request.match_info["channel"]
        try:
            await registrar.remove(cid)
        except JoinError as exc:
            return _error(exc.http_status, str(exc))
        return web.Response(status=204)

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed as exc:
            return _error(
                405,
                f"method {request.method} is not allowed on {request.path}; "
                f"allowed: {', '.join(sorted(exc.allowed_methods))}",
            )
        except web.HTTPNotFound:
            return _error(404, f"no such resource: {request.path}")

    app = web.Application(client_max_size=max_body, middlewares=[errors])
    app.add_routes(routes)
    return app
