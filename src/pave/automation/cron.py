"""Cron expressions for scheduled retraining: five fields, UTC, the classic syntax.

``minute hour day-of-month month day-of-week`` with ``*``, numbers, ranges ``a-b``, steps ``*/n``
and ``a-b/n``, and lists ``a,b``; day of week 0-7 (0 and 7 are Sunday). As in cron, when both
day of month and day of week are restricted, a day matching either one fires. A few aliases:
``@hourly``, ``@daily``, ``@weekly``, ``@monthly``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pave.errors import InvalidInput

_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_HINT = "write five fields, minute hour day month weekday, e.g. '0 3 * * *' (03:00 UTC every day)"


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; :meth:`next_after` is the next firing time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches(self, moment: datetime) -> bool:
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self._day_ok(moment)
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first minute strictly after ``moment`` (UTC) that the expression matches."""
        current = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = current + timedelta(days=5 * 366)  # every valid expression fires within five years
        while current < limit:
            if current.month not in self.months:
                current = (current.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_ok(current):
                current = current.replace(hour=0, minute=0) + timedelta(days=1)
            elif current.hour not in self.hours:
                current = current.replace(minute=0) + timedelta(hours=1)
            elif current.minute not in self.minutes:
                current += timedelta(minutes=1)
            else:
                return current
        raise InvalidInput(f"cron expression {self.expression!r} never fires", hint=_HINT)

    def _day_ok(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        try:
            step = int(step_text) if slash else 1
            if base == "*":
                start, end = lo, hi
            elif "-" in base:
                a, b = base.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = int(base)
                end = hi if slash else start
        except ValueError:
            raise InvalidInput(
                f"cron {name} field {text!r} is not a number, range or step", hint=_HINT
            ) from None
        if step < 1 or not lo <= start <= end <= hi:
            raise InvalidInput(f"cron {name} field {text!r} is outside {lo}-{hi}", hint=_HINT)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> Cron:
    """Parse ``expression``; raise InvalidInput naming the bad field."""
    text = _ALIASES.get(expression.strip(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise InvalidInput(f"cron expression {expression!r} has {len(parts)} fields, not 5", hint=_HINT)
    sets = [_field(part, name, lo, hi) for part, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(
        expression=expression,
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
