"""The local stack's functions import only what the deployed functions install.

The stack puts this folder on its function processes' PYTHONPATH, so Python runs this module
as it starts them. Cloud Functions installs ``functions/requirements.txt`` and nothing more;
the development environment has more: the model extra (torch, transformers,
sentence-transformers, which make and check the ONNX export) and the test tools. A module that
only such a distribution provides is refused here as it would be missing there, with a
ModuleNotFoundError that names the lock. Which distribution provides each top-level module is
worked out once per state of the locks and the environment (about half a second) and kept in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ROOT / "functions" / "requirements.txt"
# In every environment, deployed or not (pip's own), and this repository's package itself.
ALWAYS = {"pip", "setuptools", "wheel", "ticket-triage"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lock: Path) -> set[str]:
    found = (re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==", line.strip()) for line in lock.read_text().splitlines())
    return {normalized(match.group(1)) for match in found if match}


def not_deployed(deployed: set[str]) -> dict[str, list[str]]:
    """Each top-level module installed here that no deployed distribution provides, with the
    distributions that do."""
    # Changes with the locks, and with any package installed or removed (site-packages' entries).
    installed = os.stat(sysconfig.get_paths()["purelib"]).st_mtime_ns
    key = hashlib.sha256(f"{sorted(deployed)}\0{sys.prefix}\0{installed}".encode())
    for lock in sorted(ROOT.glob("requirements*.txt")):
        key.update(lock.read_bytes())
    cache = Path(sys.prefix) / ".triage-not-deployed.json"
    try:
        kept = json.loads(cache.read_text())
        if kept["key"] == key.hexdigest():
            return kept["modules"]
    except (OSError, ValueError, KeyError):
        pass
    import importlib.metadata  # a cache miss only: importing it is most of this module's cost

    allowed = deployed | ALWAYS
    modules = {
        module: sorted(dists)
        for module, dists in importlib.metadata.packages_distributions().items()
        if not any(normalized(d) in allowed for d in dists)
    }
    staged = cache.with_name(f"{cache.name}.{os.getpid()}")
    try:
        staged.write_text(json.dumps({"key": key.hexdigest(), "modules": modules}))
        staged.replace(cache)
    except OSError:
        pass  # a read-only environment: worked out again next time
    return modules


class NotDeployed:  # a meta path finder (importlib.abc's base class would cost 40 ms to import)
    def __init__(self, modules: dict[str, list[str]]):
        self.modules = modules

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        top = name.partition(".")[0]
        if top in self.modules:
            raise ModuleNotFoundError(
                f"No module named {name!r} in the deployed functions: {', '.join(self.modules[top])} is not in "
                f"{DEPLOYED.relative_to(ROOT)} (the local stack refuses what Cloud Functions would not install)",
                name=name,
            )
        return None


if DEPLOYED.exists():
    sys.meta_path.insert(0, NotDeployed(not_deployed(pinned(DEPLOYED))))
