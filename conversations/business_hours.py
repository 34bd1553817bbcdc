"""Whether a bot's team is at work now, from its handoff settings' hours and time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bots.models import HandoffSettings


def within_business_hours(*, settings: HandoffSettings, now: datetime) -> bool:
    """True when hours are off, or `now` (aware) falls on a listed weekday between start and end in
    the settings' time zone. An end before the start spans midnight (22:00-06:00)."""
    if not settings.hours_enabled:
        return True
    try:
        zone = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    days = {int(d) for d in settings.hours_days or []}
    start, end, t = settings.hours_start, settings.hours_end, local.time()
    if start <= end:
        return local.weekday() in days and start <= t < end
    # Overnight: the evening part belongs to the listed day, the morning part to the day before.
    if t >= start:
        return local.weekday() in days
    return t < end and (local.weekday() - 1) % 7 in days
