"""Work on labelled history, outside the request path: reading ticket files (``datasets``),
loading them into the memory (``backfill``) and replaying them to measure and tune the
memory decision (``evaluation``). Used by the ``triage`` command line.
"""
