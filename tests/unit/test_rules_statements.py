"""Billing statements (counters/periods.py, counters/statements.py): period bounds (billing_day 31 in
February), the close after the grace, what a frozen statement holds, and the true-up of late events."""

from __future__ import annotations

from datetime import date, datetime, timezone

from counters.history import Entry, billing_peak
from counters.periods import closes_at, period_bounds
from counters.late import DAY_US, EPOCH, LateTally
from counters.statements import NO_LATE, Late, due_periods, freeze, statements_report, true_up


def _day(text: str, internal: int, external: int = 0) -> Entry:
    return Entry(text, internal, internal, internal, external, external, external)


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)


def test_billing_day_31_starts_a_short_month_on_its_last_day() -> None:
    assert period_bounds(date(2026, 2, 10), 31) == (date(2026, 1, 31), date(2026, 2, 28))
    assert period_bounds(date(2026, 2, 28), 31) == (date(2026, 2, 28), date(2026, 3, 31))
    assert period_bounds(date(2028, 2, 28), 31) == (date(2028, 1, 31), date(2028, 2, 29))  # a leap year
    assert period_bounds(date(2026, 4, 30), 31) == (date(2026, 4, 30), date(2026, 5, 31))
    assert period_bounds(date(2026, 12, 31), 31) == (date(2026, 12, 31), date(2027, 1, 31))
    assert period_bounds(date(2027, 1, 5), 15) == (date(2026, 12, 15), date(2027, 1, 15))
    assert billing_peak([_day("2026-02-27", 4)], date(2026, 2, 27), 31)["current_period"]["start"] == "2026-01-31"


def test_a_period_closes_statement_grace_hours_after_it_ends() -> None:
    assert closes_at(date(2026, 12, 1), 72) == datetime(2026, 12, 4, tzinfo=timezone.utc)
    at = datetime(2026, 12, 3, 23, 59, tzinfo=timezone.utc)
    assert due_periods(at, 1, 72, frozen=["2026-10-01"]) == []  # November is in its grace
    assert due_periods(at, 1, 72, frozen=[]) == [(date(2026, 10, 1), date(2026, 11, 1))]  # October was never frozen
    assert due_periods(datetime(2026, 12, 4, tzinfo=timezone.utc), 1, 72, frozen=["2026-10-01"]) == [
        (date(2026, 11, 1), date(2026, 12, 1))]
    assert due_periods(datetime(2026, 12, 4, tzinfo=timezone.utc), 1, 72, frozen=["2026-10-01", "2026-11-01"]) == []
    assert due_periods(datetime(2026, 12, 1, tzinfo=timezone.utc), 1, 0, frozen=[]) == [(date(2026, 10, 1), date(2026, 11, 1)),
                                                                               (date(2026, 11, 1), date(2026, 12, 1))]


def test_a_frozen_statement_holds_the_peak_with_its_day_capacity_overage_and_counts_at_close() -> None:
    daily = [_day("2026-10-30", 9, 1), _day("2026-11-03", 12, 2), _day("2026-11-20", 12, 5), _day("2026-12-02", 30, 9)]
    frozen = freeze("acme", date(2026, 11, 1), date(2026, 12, 1), 72, daily, NO_LATE, {"internal": 10, "external": None},
                    {"internal": 30, "external": 9}, datetime(2026, 12, 4, 0, 0, 20, tzinfo=timezone.utc))
    assert frozen["peak"] == {"internal": {"count": 12, "day": "2026-11-03"}, "external": {"count": 5, "day": "2026-11-20"}}
    assert frozen["overage"] == {"internal": 2, "external": None}
    assert frozen["counts_at_close"] == {"internal": 30, "external": 9}  # December's growth is not November's peak
    assert (frozen["period_start"], frozen["period_end"], frozen["closes_at"], frozen["closed"]) == (
        "2026-11-01", "2026-11-30", "2026-12-04T00:00:00Z", True)
    quiet = freeze("acme", date(2026, 11, 1), date(2026, 12, 1), 72, [_day("2026-10-30", 9)], NO_LATE, {}, {},
                   datetime(2026, 12, 4, tzinfo=timezone.utc))
    assert quiet["peak"]["internal"] == {"count": 9, "day": "2026-11-01"}  # a quiet month bills the carried count


def test_late_events_count_only_before_the_open_period_with_the_count_after_each() -> None:
    tally = LateTally()
    tally.open_from(date(2026, 12, 2), 1)
    assert not tally.is_late(_us("2026-12-01T00:00:00"))  # in the open period
    assert not tally.is_late(_us("2025-10-01T00:00:00"))  # older than the history: no statement to correct
    for at, internal in (("2026-11-29T10:00:00", 13), ("2026-11-30T10:00:00", 14), ("2026-11-30T11:00:00", 12)):
        assert tally.is_late(_us(at))
        tally.add(_us(at), {"internal": internal, **({"external": 1} if internal == 13 else {})}, 1)
    assert tally.events == {"2026-11-01": 3}
    assert tally.peaks == {"2026-11-01": {"internal": (14, "2026-11-30"), "external": (1, "2026-11-29")}}
    assert EPOCH.toordinal() + _us("2026-11-30T00:00:00") // DAY_US == date(2026, 11, 30).toordinal()


def test_events_after_the_close_change_nothing_frozen_and_show_as_a_true_up() -> None:
    daily = [_day("2026-11-03", 12)]
    in_grace = Late({"internal": (13, "2026-11-30")}, 1)  # arrived in the grace: part of the statement
    frozen = freeze("acme", date(2026, 11, 1), date(2026, 12, 1), 72, daily, in_grace, {"internal": 10}, {},
                    datetime(2026, 12, 4, tzinfo=timezone.utc))
    assert frozen["peak"]["internal"] == {"count": 13, "day": "2026-11-30"} and frozen["late_events"] == 1
    assert true_up(frozen, daily, in_grace) is None
    later = Late({"internal": (15, "2026-11-28")}, 3)
    correction = true_up(frozen, daily, later)
    assert correction == {"events": 2, "peak": {"internal": {"count": 15, "day": "2026-11-28"},
                                                 "external": {"count": 0, "day": "2026-11-03"}},
                          "overage": {"internal": 5, "external": None}}
    assert frozen["peak"]["internal"]["count"] == 13  # the frozen figures stay


def test_the_statements_list_the_open_period_then_the_frozen_ones_newest_first() -> None:
    daily = [_day("2026-11-03", 12), _day("2026-12-02", 20)]
    frozen = freeze("acme", date(2026, 11, 1), date(2026, 12, 1), 72, daily, NO_LATE, {"internal": 10}, {},
                    datetime(2026, 12, 4, tzinfo=timezone.utc))
    shown = statements_report(datetime(2026, 12, 6, tzinfo=timezone.utc), 1, 72, daily, {"2026-11-01": frozen},
                       {"2026-11-01": Late({"internal": (16, "2026-11-30")}, 1)}, {"internal": 10})
    assert [(s["period_start"], s["closed"]) for s in shown] == [("2026-12-01", False), ("2026-11-01", True)]
    assert shown[0]["peak"]["internal"] == {"count": 20, "day": "2026-12-02"} and shown[0]["overage"]["internal"] == 10
    assert shown[1]["true_up"]["peak"]["internal"]["count"] == 16 and "subscription" not in shown[1]
    in_grace = statements_report(datetime(2026, 12, 2, tzinfo=timezone.utc), 1, 72, daily, {}, {}, {})
    assert [(s["period_start"], s["closed"]) for s in in_grace] == [("2026-12-01", False), ("2026-11-01", False)]
