"""A report's file for one period: its rows read through `ReportInputs`, written in its format."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any, Protocol

from wa_monitor.core.report_config import Period, ReportSpec
from wa_monitor.reports.sheets import COLUMNS, csv_cell, export_values, write_table_xlsx, write_xlsx

DAILY_COLUMNS = ("date", "project", "count")
SUMMARY_COLUMNS = (
    "date",
    "project",
    "drops",
    "complete",
    "incomplete",
    "feedbackSent",
    "resubmitted",
    "overdue",
)
NO_PROJECT = "Unknown"  # the sheet's name for drops of no project, as the front end's


class ReportInputs(Protocol):
    """What reports are built from; the web layer reads it from the review database."""

    def daily_counts(self, day: date) -> Sequence[tuple[str | None, int]]:
        """Distinct drops per project whose WhatsApp message fell on `day` locally."""
        ...

    def reviews(
        self, day: date, project: str | None
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """The day's reviews (of `project`, None: all): (the row, the API's drop)."""
        ...

    def summary(self, day: date, project: str | None) -> Sequence[tuple[str, Mapping[str, int]]]:
        """Per project of the day (or `project` alone): the summary cards' figures."""
        ...


@dataclass(frozen=True)
class Built:
    """A report's file (or an alert's), ready to deliver."""

    file_name: str
    content: bytes
    rows: int
    # The day's drops per project the report covers (daily-drops); empty for others.
    counts: tuple[tuple[str, int], ...] = ()
    subject: str = ""  # an e-mail's subject
    text: str = ""  # an e-mail's text
    attach: bool = True  # False: the e-mail carries the text alone (an alert)
    # Sent as X-WA-Monitor-<Key> headers to a webhook: what the body is.
    labels: Mapping[str, str] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """What a delivery record keeps of it."""
        return {"file": self.file_name, "bytes": len(self.content), "rows": self.rows}


def period_of(day: date) -> str:
    """A day report's period, as its records and files name it."""
    return day.isoformat()


def daily_rows(
    spec: ReportSpec, day: date, counts: Sequence[tuple[str | None, int]]
) -> list[tuple[str, int]]:
    """The (project, count) rows of a daily-drops report: its project's, or every one."""
    rows = [(p or NO_PROJECT, n) for p, n in counts]
    if spec.project is None:
        return rows
    return [(spec.project, sum(n for p, n in rows if p == spec.project))]


def build(
    spec: ReportSpec,
    period: Period | date,
    inputs: ReportInputs,
    *,
    zone: tzinfo,
    labels: Mapping[str, str],
    counts: Sequence[tuple[str | None, int]] | None = None,
) -> Built:
    """The report's file for `period` (`counts`: a single day's, when the caller has them)."""
    if isinstance(period, date):
        period = Period(period, period)
    name = spec.file_name(period.name)
    days = list(period.days())
    meta = {"report": spec.name, "period": period.name}
    if spec.what == "daily-drops":
        table: list[tuple[str, str, int]] = []
        total: dict[str, int] = {}
        for day in days:
            found = inputs.daily_counts(day) if counts is None or len(days) > 1 else counts
            for p, n in daily_rows(spec, day, found):
                table.append((day.isoformat(), p, n))
                total[p] = total.get(p, 0) + n
        content = _table(spec, period, DAILY_COLUMNS, table, "Daily drops")
        text = _text(spec, period, [f"{p}: {n} drop(s)" for p, n in total.items()])
        return Built(
            name,
            content,
            len(table),
            tuple(total.items()),
            _subject(spec, period),
            text,
            labels=meta,
        )
    if spec.what == "summary":
        rows = [
            (day.isoformat(), p, *(figures.get(c, 0) for c in SUMMARY_COLUMNS[2:]))
            for day in days
            for p, figures in inputs.summary(day, spec.project)
        ]
        content = _table(spec, period, SUMMARY_COLUMNS, rows, "Summary")
        lines = [
            f"{r[0]} {r[1]}: "
            + ", ".join(f"{v} {c}" for c, v in zip(SUMMARY_COLUMNS[2:], r[2:], strict=True))
            for r in rows
        ]
        return Built(
            name,
            content,
            len(rows),
            (),
            _subject(spec, period),
            _text(spec, period, lines),
            labels=meta,
        )
    if spec.what == "reviews":
        drops = itertools.chain.from_iterable(inputs.reviews(d, spec.project) for d in days)
        content, count = _reviews(spec, period, drops, zone, labels)
        text = _text(spec, period, [f"{count} review(s)"])
        return Built(name, content, count, (), _subject(spec, period), text, labels=meta)
    raise ValueError(f"no builder for the report kind {spec.what!r}")


def _subject(spec: ReportSpec, period: Period) -> str:
    of = f" ({spec.project})" if spec.project else ""
    return f"WA Monitor: {spec.name} {period.name}{of}"


def _text(spec: ReportSpec, period: Period, lines: Sequence[str]) -> str:
    head = f"The report {spec.name} for {period.name}" + (
        f", project {spec.project}" if spec.project else ", all projects"
    )
    body = "\n".join(f"  {line}" for line in lines) or "  nothing for the period"
    return f"{head}:\n\n{body}\n\nThe file is attached.\n"


def _table(
    spec: ReportSpec,
    period: Period,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str,
) -> bytes:
    if spec.format == "xlsx":
        file = io.BytesIO()
        write_table_xlsx(file, title, columns, rows)
        return file.getvalue()
    if spec.format == "csv":
        return _csv(columns, rows)
    return _json(spec, period, [dict(zip(columns, r, strict=True)) for r in rows])


def _reviews(
    spec: ReportSpec,
    period: Period,
    drops: Iterator[tuple[dict[str, Any], dict[str, Any]]],
    zone: tzinfo,
    labels: Mapping[str, str],
) -> tuple[bytes, int]:
    if spec.format == "xlsx":
        file = io.BytesIO()
        count = write_xlsx(file, drops, labels, zone)
        return file.getvalue(), count
    values = [export_values(drop, labels) for _row, drop in drops]
    if spec.format == "csv":
        return _csv(COLUMNS, [[v[c] for c in COLUMNS] for v in values]), len(values)
    return _json(spec, period, values), len(values)


def _csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8", "replace")


def _json(spec: ReportSpec, period: Period, rows: list[dict[str, Any]]) -> bytes:
    document: dict[str, Any] = {
        "report": spec.name,
        "what": spec.what,
        "date": period.last.isoformat(),
        "period": {"first": period.first.isoformat(), "last": period.last.isoformat()},
        "project": spec.project,
        "rows": rows,
    }
    text = json.dumps(document, ensure_ascii=False, indent=2, default=_jsonable)
    return (text + "\n").encode("utf-8", "replace")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
