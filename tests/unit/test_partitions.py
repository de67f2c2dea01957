"""Calendar months for partitions: month ends, year ends, the backfill window."""

from __future__ import annotations

import datetime as dt

from datastorage.persistence.partitions import Month, months_to_keep


def names(months: list[Month]) -> list[str]:
    return [month.table_name for month in months]


def test_a_start_on_the_31st_still_creates_the_next_months() -> None:
    # Day arithmetic (31 Jan + 30 days = 2 Mar) would skip February.
    months = months_to_keep(dt.date(2027, 1, 31), backfill_days=0, months_ahead=3)
    assert names(months) == [
        "audit_events_2027_01",
        "audit_events_2027_02",
        "audit_events_2027_03",
        "audit_events_2027_04",
    ]


def test_december_rolls_over_into_the_next_year() -> None:
    months = months_to_keep(dt.date(2026, 12, 15), backfill_days=0, months_ahead=2)
    assert names(months) == ["audit_events_2026_12", "audit_events_2027_01", "audit_events_2027_02"]


def test_backfill_window_reaches_into_the_previous_month_and_year() -> None:
    months = months_to_keep(dt.date(2027, 1, 3), backfill_days=7, months_ahead=1)
    assert names(months) == ["audit_events_2026_12", "audit_events_2027_01", "audit_events_2027_02"]


def test_month_arithmetic_and_bounds() -> None:
    assert Month(2024, 1).shifted(-1) == Month(2023, 12)
    assert Month(2024, 11).shifted(14) == Month(2026, 1)
    assert Month(2024, 2).first_day == dt.date(2024, 2, 1)
    assert Month.of(dt.date(2024, 2, 29)) == Month(2024, 2)
