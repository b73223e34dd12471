"""The contracts: events, changes, outputs and their codecs. Importing the package first refuses
compiled modules older than their source (schemas/compiled.py)."""

from pathlib import Path

from schemas.compiled import refuse_stale

refuse_stale(Path(__file__).resolve().parent.parent)
