"""Connectors: long-running readers of identity providers that publish what they read as our events
(docs/sources.md). Each provider's mapping is a pure function in a module of its own; the runners
validate every mapped event with the same codec as the worker and publish it as ``endusers publish``
does, keeping their cursor in the store."""
