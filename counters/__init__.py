"""The counting engine's front door: everything outside ``counters/`` uses these names, and only these.

Pure and synchronous, it knows nothing of Kafka or Redis. A caller turns a validated input event into
a change (:func:`to_change`, with a :class:`Digester` and an :class:`ArrivalClock` for untimed events),
applies it to a :class:`SubscriptionState` (:func:`apply`, which returns the capacity events it
causes), and after loading a state's persisted part calls :func:`restore` (or, from an event loop,
steps through :func:`restore_in_steps`). :class:`Replay` does all of that in memory for JSONL files.
The rest are the reports a store or the web derive from a state. The modules behind these names are
the engine's own business: ``streams/`` never imports them directly (tests/unit/test_architecture.py).
"""

from counters.admission import Candidate, admission, candidate
from counters.classify import CLASSES
from counters.clock import ArrivalClock
from counters.digest import DEVELOPMENT_SECRET, UNRECORDED, DigestMismatch, Digester, fingerprint
from counters.dormancy import (
    DORMANT_CSV_HEADER,
    ROSTER_CSV_HEADER,
    dormant,
    dormant_csv_rows,
    roster,
    roster_csv_rows,
)
from counters.domains import DomainsReport, external_domains
from counters.engine import apply, restore, restore_in_steps
from counters.explain import NotAnIdentifier, digests_of, explanation, explanation_text, record_digest
from counters.forecast import WINDOW_DAYS, forecast_class
from counters.history import (
    DAILY_DAYS,
    HISTORY_CSV_HEADER,
    HOURLY_DAYS,
    Entry,
    billing_peak,
    day_of,
    filled,
    hour_of,
    parse_entries,
)
from counters.limits import LimitExceeded
from counters.normalize import normalize_email, normalize_owned_domain, normalize_username
from counters.replay import Replay, replay_lines
from counters.sealing import UNNAMED, Sealer
from counters.shared import shared_identifiers_report
from counters.late import LateTally
from counters.periods import closes_at, period_bounds
from counters.statements import (
    NO_LATE,
    Late,
    due_periods,
    freeze,
    statements_document,
    statements_report,
)
from counters.sources import ACTIVE_DAYS, DAY_US, SOURCE_DAYS, SourceTally, is_silent, sources_report
from counters.state import (
    ACTIVE,
    DEFAULT_SHARED_IDENTIFIER_THRESHOLD,
    DEFAULT_TENANT,
    EXCLUDED,
    LOGGED_IN,
    DEFAULT_DORMANT_DAYS,
    DEFAULT_SOURCE_SILENCE,
    DEFAULT_STATEMENT_GRACE,
    NEVER,
    STORED,
    SUBSCRIPTION_SCOPE,
    Record,
    SubscriptionSettings,
    SubscriptionState,
    release_users,
)
from counters.ports import (
    AuditTrail,
    CommittedCounts,
    CommittedReads,
    CommittedStates,
    CountsReader,
    Cursors,
    DigestCheck,
    Directory,
    History,
    LoadProgress,
    OperatorReads,
    Outbox,
    Position,
    ReadSide,
    States,
    Store,
    StoreUnavailable,
    StoredDigests,
)
from counters.translate import to_change
from counters.whatif import preview

__all__ = [
    # applying changes to a state, and restoring a loaded one
    "apply", "restore", "restore_in_steps", "LimitExceeded",
    # what the stages, the web, the alerts, readiness and the CLI ask of a store (counters/ports.py)
    "Store", "States", "Outbox", "Directory", "CommittedReads", "CommittedCounts", "Position", "ReadSide",
    "StoreUnavailable", "LoadProgress", "DigestCheck", "StoredDigests", "History", "AuditTrail",
    "CommittedStates", "CountsReader", "OperatorReads", "Cursors",
    # the state and what a store persists of it
    "SubscriptionState", "SubscriptionSettings", "Record", "NEVER", "SUBSCRIPTION_SCOPE", "STORED", "release_users",
    "ACTIVE", "DEFAULT_TENANT", "LOGGED_IN", "EXCLUDED",
    "DEFAULT_SHARED_IDENTIFIER_THRESHOLD", "CLASSES",
    # events into changes
    "to_change", "Digester", "DigestMismatch", "UNRECORDED", "fingerprint", "DEVELOPMENT_SECRET", "ArrivalClock",
    "normalize_email", "normalize_username", "normalize_owned_domain",
    # the offline replay
    "Replay", "replay_lines",
    # reports derived from a state
    "shared_identifiers_report", "DomainsReport", "external_domains", "preview",
    "explanation", "explanation_text", "digests_of", "record_digest", "NotAnIdentifier",
    # who to reclaim seats from, and who is counted (counters/dormancy.py); the sealed user ids
    "dormant", "roster", "DEFAULT_DORMANT_DAYS", "Sealer", "UNNAMED", "DORMANT_CSV_HEADER", "ROSTER_CSV_HEADER",
    "dormant_csv_rows", "roster_csv_rows",
    # would one more person add to a count (counters/admission.py)
    "admission", "candidate", "Candidate",
    # silent sources (counters/sources.py)
    "SourceTally", "sources_report", "DEFAULT_SOURCE_SILENCE", "DEFAULT_STATEMENT_GRACE", "is_silent", "DAY_US", "SOURCE_DAYS", "ACTIVE_DAYS",
    # billing statements (counters/periods.py, counters/late.py, counters/statements.py)
    "LateTally", "Late", "NO_LATE", "due_periods", "freeze", "statements_report",
    "statements_document", "closes_at",
    "period_bounds",
    # the durable history and the forecast
    "Entry", "filled", "billing_peak", "day_of", "hour_of", "parse_entries", "DAILY_DAYS", "HOURLY_DAYS",
    "HISTORY_CSV_HEADER", "WINDOW_DAYS", "forecast_class",
]
