"""The baseline for the ingest benchmark: a functions-framework HTTP function that only
parses the JSON body and answers 202, served exactly like ``api``."""

import json

import functions_framework


@functions_framework.http
def trivial(request):
    body = request.get_json(silent=True) or {}
    return (
        json.dumps({"ticket_id": "x", "title_length": len(body.get("title", ""))}),
        202,
        {"Content-Type": "application/json"},
    )
