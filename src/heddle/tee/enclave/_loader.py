"""Bootstrap of a virtual enclave process.

Run as ``python -I -B _loader.py APPLICATION PLATFORM_DIR [--debug]``. It reads the
enclave runtime (every ``.py`` file beside it) and the application into memory once,
computes the measurement over those bytes, and then executes exactly those bytes:
modules are served to ``import`` from memory under the ``heddle_enclave`` package,
never re-read from disk, so what runs is what was measured.
"""

import importlib.abc
import importlib.util
import os
import sys

PACKAGE = "heddle_enclave"


class _MeasuredModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, files):
        self._files = files

    def _filename(self, fullname):
        if fullname == PACKAGE:
            return "__init__.py"
        if fullname.startswith(PACKAGE + ".") and fullname.count(".") == 1:
            return fullname.split(".", 1)[1] + ".py"
        return None

    def find_spec(self, fullname, path=None, target=None):
        name = self._filename(fullname)
        if name is None or name not in self._files:
            return None
        return importlib.util.spec_from_loader(
            fullname, self, origin=f"<measured>/{name}", is_package=fullname == PACKAGE
        )

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = self._filename(module.__name__)
        code = compile(self._files[name], module.__spec__.origin, "exec")
        exec(code, module.__dict__)  # noqa: S102 - runs the measured bytes, by design


def _main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: _loader.py APPLICATION PLATFORM_DIR [--debug]\n")
        return 2
    app_path, platform_dir = argv[1], argv[2]
    debug = "--debug" in argv[3:]
    here = os.path.dirname(os.path.abspath(__file__))
    files = {}
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as f:
                files[name] = f.read()
    with open(app_path, "rb") as f:
        application = f.read()
    # The frame channel is the original stdout; anything printed goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.meta_path.insert(0, _MeasuredModules(files))
    measure = importlib.import_module(PACKAGE + ".measure")
    if set(files) != set(measure.RUNTIME_FILES):
        sys.stderr.write("ERROR enclave runtime files differ from the measured set; refusing\n")
        return 3
    measurement = measure.measure(files, application)
    runtime = importlib.import_module(PACKAGE + ".runtime")
    return runtime.main(
        application=application,
        app_path=app_path,
        measurement=measurement,
        platform_dir=platform_dir,
        debug=debug,
        in_fd=0,
        out_fd=out_fd,
    )


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
