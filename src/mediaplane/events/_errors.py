"""Errors of the events package::

EventsError
└── BusUnavailable   the bus cannot be reached or refused a write (events wait)
"""

from __future__ import annotations


class EventsError(Exception):
    """Root of event errors (a bad bus URL, say)."""


class BusUnavailable(EventsError):
    """The bus cannot be reached or refused the events; they stay in the outbox."""
