"""The ``heddle`` command. Subcommand modules raise CliError for one-line user errors."""


class CliError(Exception):
    """An error the CLI reports as one line, without a traceback."""


def run_node(run, config) -> int:
    """Run a node (``run`` is heddle.peer.node.run or heddle.orderer.node.run) until it is
    signalled; an address it cannot listen on is a one-line error, not a traceback."""
    import asyncio

    from heddle.common.tls import ListenError

    try:
        asyncio.run(run(config))
    except ListenError as exc:
        raise CliError(str(exc)) from exc
    return 0
