"""``triage``: the operator's command line (backfill, evaluate, calibrate, reindex, and
reconcile, failed, replay for stopped or failed tickets).

Every command reads the same settings as the functions (CHROMA_*, EMBEDDING_MODEL,
TAXONOMY_FILE, MEMORY_*, ...), so what it measures or writes is what the deployed
engine will use. Progress bars go to stderr; results to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from .. import bootstrap, logs
from ..config import load_settings
from ..errors import ConfigurationError, TriageError
from .parser import parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"triage: {error}", file=sys.stderr)
        return 2
    # Results go to stdout; the engine's JSON logs to stderr, warnings only unless LOG_LEVEL says more.
    logs.configure(settings.log_level if settings.log_level.upper() == "DEBUG" else "WARNING", stream=sys.stderr)
    bootstrap.override(settings=settings)
    if getattr(arguments, "file", None) is not None and not arguments.file.is_file():
        print(f"triage: no such file: {arguments.file}", file=sys.stderr)
        return 2
    try:
        result = arguments.run(arguments)
    except TriageError as error:
        print(f"triage {arguments.command}: {error}", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
