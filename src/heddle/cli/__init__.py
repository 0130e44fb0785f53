"""The ``heddle`` command. Subcommand modules raise CliError for one-line user errors."""


class CliError(Exception):
    """An error the CLI reports as one line, without a traceback."""
