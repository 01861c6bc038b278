"""The HTTP API: one route table (``ROUTES``, from the resource modules) served by ``app.App``,
which derives routing, scope checks and ``/openapi.json`` from it."""

from . import admin, console, tickets, webhooks
from .app import App, Context, Header, Route, framework_error

ROUTES = (*tickets.ROUTES, *webhooks.ROUTES, *admin.ROUTES, *console.ROUTES)

__all__ = ["ROUTES", "App", "Context", "Header", "Route", "framework_error"]
