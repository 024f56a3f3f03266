"""horae.schedule: every schedule kind, validation messages, time zones and the DST policy."""

from __future__ import annotations

import bisect
import datetime
import itertools
import random
import zoneinfo

import pytest
from croniter import croniter

from horae.schedule import KIND_AT, KIND_CRON, KIND_EVERY, KIND_MANUAL, ScheduleError, parse_schedule

UTC = datetime.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def at(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)


def fires(spec: str, after: datetime.datetime, count: int = 3, timezone: str = "", job: str = "job") -> list[str]:
    """The next fire times as UTC ISO strings, easy to compare and to read in a failure."""
    return [moment.isoformat() for moment in parse_schedule(spec, timezone, job).preview(after, count)]


# -- cron --------------------------------------------------------------------------------------------


def test_six_field_cron_has_seconds_first() -> None:
    saturday = at(2026, 3, 7, 12)
    assert fires("15 30 9 * * MON-FRI", saturday) == [
        "2026-03-09T09:30:15+00:00",
        "2026-03-10T09:30:15+00:00",
        "2026-03-11T09:30:15+00:00",
    ]


def test_five_field_crontab_fires_on_the_minute() -> None:
    after = at(2026, 3, 7, 12, 7, 30)
    assert fires("*/15 * * * *", after) == fires("0 */15 * * * *", after)
    assert fires("*/15 * * * *", after) == [
        "2026-03-07T12:15:00+00:00",
        "2026-03-07T12:30:00+00:00",
        "2026-03-07T12:45:00+00:00",
    ]


def test_cron_agrees_with_croniter_in_utc() -> None:
    # In UTC there is no DST to disagree about, so croniter is an independent oracle for matching.
    expressions = [
        "0 0 9 * * 1-5",
        "30 */7 * * * *",
        "0 15 3 1,15 * *",
        "0 0 0 * 2 *",
        "*/20 5-10 2 * * *",
        "0 0 12 31 * *",
        "0 0 0 29 2 *",
        "0 0 0 13 * 5",
        "10 20 * * JAN,JUL SUN",
    ]
    generator = random.Random(7)
    for expression in expressions:
        schedule = parse_schedule(expression)
        for _ in range(20):
            after = at(2025, 1, 1) + datetime.timedelta(seconds=generator.randrange(4 * 365 * 86400))
            oracle = croniter(expression, after, second_at_beginning=True)
            expected = [oracle.get_next(datetime.datetime) for _ in range(3)]
            assert schedule.preview(after, 3) == expected, (expression, after)


def test_next_fire_time_is_strictly_after_and_in_utc() -> None:
    schedule = parse_schedule("0 0 9 * * *", "Europe/Berlin")
    first = schedule.next_fire_time(at(2026, 1, 5, 7, 59, 59, 999_999))
    assert first == at(2026, 1, 5, 8) and first.tzinfo is UTC
    assert schedule.next_fire_time(first) == at(2026, 1, 6, 8)
    # The same instant in another offset gives the same answer.
    assert schedule.next_fire_time(first.astimezone(NEW_YORK)) == at(2026, 1, 6, 8)


def test_next_fire_time_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("@daily").next_fire_time(datetime.datetime(2026, 1, 1))


def test_next_fire_ms_matches_next_fire_time() -> None:
    schedule = parse_schedule("0 30 1 * * *", "America/New_York")
    after = at(2026, 11, 1, 3)
    after_ms = int(after.timestamp()) * 1000
    fire_ms = schedule.next_fire_ms(after_ms)
    assert fire_ms == int(schedule.next_fire_time(after).timestamp()) * 1000
    assert schedule.next_fire_ms(fire_ms - 1) == fire_ms  # a millisecond before still gets it
    assert schedule.next_fire_ms(fire_ms) > fire_ms  # feeding a fire time back never repeats it


def test_both_day_fields_restricted_means_either() -> None:
    # Dkron (robfig/cron) and Vixie cron: the 13th OR a Friday; with one of them "*" both must match.
    after = at(2026, 2, 1)
    assert fires("0 0 0 13 * FRI", after, 4) == [
        "2026-02-06T00:00:00+00:00",
        "2026-02-13T00:00:00+00:00",
        "2026-02-20T00:00:00+00:00",
        "2026-02-27T00:00:00+00:00",
    ]
    assert fires("0 0 0 13 * ?", after, 2) == ["2026-02-13T00:00:00+00:00", "2026-03-13T00:00:00+00:00"]
    assert fires("0 0 0 ? * FRI", after, 1) == ["2026-02-06T00:00:00+00:00"]


def test_names_are_case_insensitive_and_seven_is_sunday() -> None:
    after = at(2026, 1, 1)
    assert fires("0 0 0 * jan sun", after) == fires("0 0 0 * 1 0", after) == fires("0 0 0 * JAN 7", after)
    assert fires("0 0 0 * * Sat,sUN", after, 2) == [
        "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00",
    ]


def test_number_slash_step_runs_to_the_end_of_the_range() -> None:
    assert fires("0 50/5 10 * * *", at(2026, 1, 1), 3) == [
        "2026-01-01T10:50:00+00:00",
        "2026-01-01T10:55:00+00:00",
        "2026-01-02T10:50:00+00:00",
    ]


def test_a_rare_date_is_found_years_ahead() -> None:
    assert fires("0 0 0 29 2 *", at(2024, 3, 1), 2) == ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]


# -- descriptors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("descriptor", "expression"),
    [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@minutely", "0 * * * * *"),
    ],
)
def test_descriptors_are_their_cron_expressions(descriptor: str, expression: str) -> None:
    schedule = parse_schedule(descriptor, "Europe/Berlin")
    assert schedule.kind == KIND_CRON
    after = at(2026, 5, 17, 10, 20, 30)
    assert schedule.preview(after, 4) == parse_schedule(expression, "Europe/Berlin").preview(after, 4)


def test_descriptors_honour_the_timezone() -> None:
    # Berlin midnight: 23:00 UTC in winter, 22:00 UTC in summer. Dkron would use server time.
    assert fires("@daily", at(2026, 1, 10, 12), 1, "Europe/Berlin") == ["2026-01-10T23:00:00+00:00"]
    assert fires("@daily", at(2026, 7, 10, 12), 1, "Europe/Berlin") == ["2026-07-10T22:00:00+00:00"]
    assert fires("@weekly", at(2026, 1, 1), 1, "America/New_York") == ["2026-01-04T05:00:00+00:00"]  # Sunday
    assert fires("@yearly", at(2026, 6, 1), 1, "Asia/Tokyo") == ["2026-12-31T15:00:00+00:00"]


# -- time zones --------------------------------------------------------------------------------------


def test_empty_timezone_means_utc() -> None:
    schedule = parse_schedule("0 0 9 * * *", "")
    assert schedule.timezone == "UTC"
    assert fires("0 0 9 * * *", at(2026, 7, 1), 2, "") == fires("0 0 9 * * *", at(2026, 7, 1), 2, "UTC")
    assert fires("0 0 9 * * *", at(2026, 7, 1), 1, "") == ["2026-07-01T09:00:00+00:00"]


@pytest.mark.parametrize("prefix", ["TZ", "CRON_TZ"])
def test_zone_prefix_overrides_the_timezone_field(prefix: str) -> None:
    schedule = parse_schedule(f"{prefix}=Europe/Berlin 0 0 9 * * *", "America/New_York")
    assert schedule.timezone == "Europe/Berlin"
    assert schedule.next_fire_time(at(2026, 1, 10)) == at(2026, 1, 10, 8)
    assert parse_schedule(f"{prefix}=Asia/Tokyo @daily").next_fire_time(at(2026, 1, 10)) == at(2026, 1, 10, 15)


# -- daylight saving ---------------------------------------------------------------------------------


def test_new_york_spring_forward_fires_once_at_the_end_of_the_gap() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that day.
    assert fires("0 30 2 * * *", at(2026, 3, 7, 12), 3, "America/New_York") == [
        "2026-03-08T07:00:00+00:00",  # 03:00 EDT, the first valid instant after the gap
        "2026-03-09T06:30:00+00:00",  # 02:30 EDT again
        "2026-03-10T06:30:00+00:00",
    ]
    # Several skipped wall times collapse into that one instant: one fire, not four.
    assert fires("0 */15 2 * * *", at(2026, 3, 8, 6), 2, "America/New_York") == [
        "2026-03-08T07:00:00+00:00",
        "2026-03-09T06:00:00+00:00",
    ]


def test_new_york_fall_back_fires_once_at_the_first_occurrence() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice; croniter alone fires twice.
    assert fires("0 30 1 * * *", at(2026, 10, 31, 12), 2, "America/New_York") == [
        "2026-11-01T05:30:00+00:00",  # 01:30 EDT
        "2026-11-02T06:30:00+00:00",  # not 06:30 UTC on the 1st (01:30 EST), but the next day
    ]
    # Asked from inside the second pass of the repeated hour, nothing more fires that night.
    second_pass = at(2026, 11, 1, 6, 10)  # 01:10 EST
    assert second_pass.astimezone(NEW_YORK).fold == 1
    assert fires("0 30 1 * * *", second_pass, 1, "America/New_York") == ["2026-11-02T06:30:00+00:00"]


def test_new_york_fall_back_minute_lists_fire_at_first_occurrences_only() -> None:
    assert fires("0 */15 1 * * *", at(2026, 11, 1, 4), 5, "America/New_York") == [
        "2026-11-01T05:00:00+00:00",
        "2026-11-01T05:15:00+00:00",
        "2026-11-01T05:30:00+00:00",
        "2026-11-01T05:45:00+00:00",
        "2026-11-02T06:00:00+00:00",
    ]
    # An every-15-minutes schedule is silent during the repeat and resumes at 02:00 EST.
    assert fires("*/15 * * * *", at(2026, 11, 1, 5, 40), 3, "America/New_York") == [
        "2026-11-01T05:45:00+00:00",
        "2026-11-01T07:00:00+00:00",
        "2026-11-01T07:15:00+00:00",
    ]


def test_berlin_transitions() -> None:
    # 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
    assert fires("0 30 2 * * *", at(2026, 3, 28, 12), 2, "Europe/Berlin") == [
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST
        "2026-03-30T00:30:00+00:00",
    ]
    assert fires("0 30 2 * * *", at(2026, 10, 24, 12), 2, "Europe/Berlin") == [
        "2026-10-25T00:30:00+00:00",  # 02:30 CEST, the first of the two
        "2026-10-26T01:30:00+00:00",
    ]


def test_lord_howe_half_hour_transitions() -> None:
    # Lord Howe shifts by 30 minutes: 2026-04-05 02:00 +11 → 01:30 +10:30; 2026-10-04 02:00 +10:30 → 02:30 +11.
    assert fires("0 45 1 * * *", at(2026, 4, 4), 2, "Australia/Lord_Howe") == [
        "2026-04-04T14:45:00+00:00",  # 01:45 +11, the first of the two
        "2026-04-05T15:15:00+00:00",  # 01:45 +10:30 the next day
    ]
    assert fires("0 15 2 * * *", at(2026, 10, 3), 2, "Australia/Lord_Howe") == [
        "2026-10-03T15:30:00+00:00",  # 02:15 is skipped: 02:30 +11
        "2026-10-04T15:15:00+00:00",
    ]


def _oracle_fires(spec: str, zone_name: str, start: datetime.datetime, hours: int) -> list[datetime.datetime]:
    """The DST policy by its definition: a matching wall time W fires at the first instant whose wall
    time is W or later. Walks every minute of real time, so it needs no knowledge of the transitions."""
    zone = zoneinfo.ZoneInfo(zone_name)
    seconds, *fields = spec.split()
    assert seconds == "0", "the oracle works in whole minutes"
    crontab = " ".join(fields)
    instants = [start + datetime.timedelta(minutes=step) for step in range(hours * 60)]
    walls = [moment.astimezone(zone).replace(tzinfo=None) for moment in instants]
    # The highest wall time seen so far only grows, so "first instant with wall >= W" is a bisection.
    highest_so_far = list(itertools.accumulate(walls, max))
    fired: set[datetime.datetime] = set()
    matches = croniter(crontab, walls[0] - datetime.timedelta(minutes=1))
    wall = matches.get_next(datetime.datetime)
    while wall <= highest_so_far[-1]:
        fired.add(instants[bisect.bisect_left(highest_so_far, wall)])
        wall = matches.get_next(datetime.datetime)
    return sorted(fired)


@pytest.mark.parametrize(
    ("zone_name", "transition"),
    [
        ("America/New_York", at(2026, 3, 8, 7)),
        ("America/New_York", at(2026, 11, 1, 6)),
        ("Europe/London", at(2026, 3, 29, 1)),
        ("Europe/London", at(2026, 10, 25, 1)),
        ("Australia/Lord_Howe", at(2026, 4, 4, 15)),
        ("Australia/Lord_Howe", at(2026, 10, 3, 15, 30)),
    ],
)
@pytest.mark.parametrize("spec", ["0 */15 * * * *", "0 30 1,2 * * *", "0 0,20,40 0-3 * * *", "0 45 1 * * *"])
def test_dst_policy_matches_its_definition(zone_name: str, transition: datetime.datetime, spec: str) -> None:
    start = transition - datetime.timedelta(hours=6)
    horizon = start + datetime.timedelta(hours=36)  # the oracle walks 48 hours, so it is complete up to here
    expected = [moment for moment in _oracle_fires(spec, zone_name, start, 48) if start < moment <= horizon]
    schedule = parse_schedule(spec, zone_name)
    computed = [moment for moment in schedule.preview(start, len(expected) + 1) if moment <= horizon]
    assert computed == expected
    # Asking from any moment in the 12 hours around the change gives the first expected fire after it.
    for minutes in range(0, 12 * 60, 7):
        after = start + datetime.timedelta(minutes=minutes, seconds=30)
        following = next(moment for moment in expected if moment > after)
        assert schedule.next_fire_time(after) == following, after


# -- ~ hashing ---------------------------------------------------------------------------------------


def test_tilde_uses_dkrons_hash_of_the_job_name() -> None:
    # Dkron: the sum of the name's code points (b+a+c+k+u+p = 630), reduced per field.
    schedule = parse_schedule("~ ~ ~ ~ ~ ~", job_name="backup")
    assert schedule.expression == "30 30 6 15 7 0"  # 630%60, 630%60, 630%24, 630%28+1, 630%12+1, 630%7
    assert parse_schedule("0 ~ * * * *", job_name="backup").expression == "0 30 * * * *"


def test_tilde_is_stable_and_in_range_for_any_name() -> None:
    generator = random.Random(11)
    for _ in range(300):
        name = "".join(
            generator.choice("abcdefghijklmnopqrstuvwxyz-_0123456789é") for _ in range(generator.randint(1, 30))
        )
        expression = parse_schedule("~ ~ ~ ~ ~ ~", job_name=name).expression
        assert parse_schedule("~ ~ ~ ~ ~ ~", job_name=name).expression == expression
        second, minute, hour, day, month, weekday = (int(value) for value in expression.split())
        assert 0 <= second <= 59 and 0 <= minute <= 59 and 0 <= hour <= 23
        assert 1 <= day <= 28 and 1 <= month <= 12 and 0 <= weekday <= 6


def test_tilde_spreads_different_jobs() -> None:
    minutes = {parse_schedule("0 ~ * * * *", job_name=f"job-{number}").expression for number in range(10)}
    assert len(minutes) == 10


def test_tilde_step_fires_every_step_phased_by_the_hash() -> None:
    # "reports" sums to 783: Dkron's minute is 783 % 60 = 3, so every 15 minutes from :03.
    schedule = parse_schedule("0 ~/15 * * * *", job_name="reports")
    assert schedule.expression == "0 3,18,33,48 * * * *"


# -- @every ------------------------------------------------------------------------------------------


def test_every_slots_are_the_same_whatever_after_is() -> None:
    schedule = parse_schedule("@every 1h30m", job_name="sync")
    early = schedule.preview(at(2026, 5, 1, 0, 0), 10)
    later = schedule.preview(at(2026, 5, 1, 4, 13, 7), 5)
    assert set(later) <= set(early)
    assert all(b - a == datetime.timedelta(minutes=90) for a, b in itertools.pairwise(early))
    # Another process (another leader) computes the same slots.
    assert parse_schedule("@every 1h30m", job_name="sync").preview(at(2026, 5, 1), 10) == early


def test_every_slots_are_aligned_to_the_epoch_plus_the_job_offset() -> None:
    schedule = parse_schedule("@every 1h", job_name="sync")
    offsets = {int(moment.timestamp()) % 3600 for moment in schedule.preview(at(2026, 5, 1), 48)}
    assert len(offsets) == 1
    assert offsets == {schedule.offset_ms // 1000}


def test_every_offsets_differ_between_jobs() -> None:
    offsets = {parse_schedule("@every 1h", job_name=name).offset_ms for name in ("alpha", "beta", "gamma", "delta")}
    assert len(offsets) == 4


def test_every_ignores_the_timezone_but_validates_it() -> None:
    after = at(2026, 3, 29)
    utc = parse_schedule("@every 45m", "", "sync").preview(after, 5)
    assert parse_schedule("@every 45m", "Europe/Berlin", "sync").preview(after, 5) == utc
    with pytest.raises(ScheduleError, match="Europe/Berlin"):
        parse_schedule("@every 45m", "Europe/Berln", "sync")


def test_every_keeps_sub_second_intervals() -> None:
    times = parse_schedule("@every 1.5s", job_name="fast").preview(at(2026, 1, 1), 3)
    assert [b - a for a, b in itertools.pairwise(times)] == [datetime.timedelta(milliseconds=1500)] * 2


@pytest.mark.parametrize("interval", ["999ms", "0s", "-5s", "500ms"])
def test_every_must_be_at_least_one_second(interval: str) -> None:
    with pytest.raises(ScheduleError, match="at least 1s"):
        parse_schedule(f"@every {interval}")
    assert parse_schedule("@every 1s").kind == KIND_EVERY


# -- @at and @manually -------------------------------------------------------------------------------


def test_at_fires_once_when_in_the_future() -> None:
    schedule = parse_schedule("@at 2026-05-01T10:00:00Z")
    assert schedule.kind == KIND_AT
    assert schedule.preview(at(2026, 1, 1), 5) == [at(2026, 5, 1, 10)]
    assert schedule.next_fire_time(at(2026, 5, 1, 10)) is None
    assert schedule.next_fire_time(at(2027, 1, 1)) is None


def test_at_reads_offsets_and_otherwise_the_job_zone() -> None:
    assert parse_schedule("@at 2026-05-01T10:00:00+02:00").next_fire_time(at(2026, 1, 1)) == at(2026, 5, 1, 8)
    assert parse_schedule("@at 2026-05-01T10:00:00", "Europe/Berlin").next_fire_time(at(2026, 1, 1)) == at(
        2026, 5, 1, 8
    )
    # A wall time in the spring-forward gap follows the DST policy.
    gap = parse_schedule("@at 2026-03-08T02:30:00", "America/New_York")
    assert gap.next_fire_time(at(2026, 1, 1)) == at(2026, 3, 8, 7)


def test_at_keeps_milliseconds() -> None:
    schedule = parse_schedule("@at 2026-05-01T10:00:00.123456Z")
    assert schedule.next_fire_time(at(2026, 1, 1)) == at(2026, 5, 1, 10, 0, 0, 123_000)


def test_manually_never_fires() -> None:
    schedule = parse_schedule("@manually", "Europe/Berlin")
    assert schedule.kind == KIND_MANUAL
    assert schedule.next_fire_time(at(2026, 1, 1)) is None
    assert schedule.preview(at(2026, 1, 1), 5) == []


# -- preview -----------------------------------------------------------------------------------------


def test_preview_returns_count_increasing_times() -> None:
    times = parse_schedule("0 */10 * * * *", "Europe/Berlin").preview(at(2026, 1, 1), 25)
    assert len(times) == 25
    assert all(a < b for a, b in itertools.pairwise(times))
    assert parse_schedule("@daily").preview(at(2026, 1, 1), 0) == []
    with pytest.raises(ValueError, match="negative"):
        parse_schedule("@daily").preview(at(2026, 1, 1), -1)


# -- validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty schedule"),
        ("* * *", "expected 6 fields (seconds minutes hours day-of-month month day-of-week)"),
        ("* * * * * * *", "got 7 fields"),
        ("0 61 * * * *", 'minutes field "61": 61 is out of range; minutes takes 0-59'),
        ("0 0 24 * * *", "hours takes 0-23"),
        ("0 0 0 0 * *", "day-of-month takes 1-31"),
        ("0 0 0 * 13 *", "month takes 1-12 or JAN-DEC"),
        ("0 0 0 * * 8", "day-of-week takes 0-7"),
        ("0 0 0 * FOO *", '"FOO" is not a number or a name'),
        ("0 0 5-1 * * *", "runs backwards"),
        ("*/0 * * * *", "step"),
        ("0 */x * * * *", "whole number"),
        ("0 1,,2 * * * *", "empty list item"),
        ("0 0 0 L * *", "not supported"),
        ("0 0 0 * * MON#2", "not supported"),
        ("0 ~-30 * * * *", '"~" stands alone'),
        ("0 0 0 30 2 *", "never fires: day 30 does not occur in February"),
        ("0 0 0 31 4,6 *", "April, June"),
        ("@daly", 'did you mean "@daily"?'),
        ("@after 2026-01-01T00:00:00Z 1h", "unknown descriptor"),
        ("@daily 5", "takes nothing after it"),
        ("@every", "needs a duration"),
        ("@every soon", "Go duration"),
        ("@every 1.0005s", "whole number of milliseconds"),
        ("@at", "RFC 3339"),
        ("@at 2026-02-30T10:00:00Z", "not a real time"),
        ("@at 2026-05-01 10:00", "RFC 3339"),
        ("TZ= 0 0 9 * * *", "needs a zone name"),
        ("TZ=Europe/Berlin", "nothing follows"),
        ("TZ=Europe/Berln 0 0 9 * * *", 'did you mean "Europe/Berlin"?'),
    ],
)
def test_bad_schedules_are_refused_with_a_message(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(spec, "", "job")
    assert message in str(caught.value)
    assert str(caught.value).startswith(f'schedule "{spec}": ')


def test_unknown_timezone_names_the_zone_and_suggests_one() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("@daily", "Mars/Olympus")
    assert '"Mars/Olympus"' in str(caught.value) and '"Europe/Berlin"' in str(caught.value)
    with pytest.raises(ScheduleError, match='did you mean "America/New_York"'):
        parse_schedule("@daily", "America/NewYork")


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)
    with pytest.raises(ValueError, match="must be text"):
        parse_schedule(5)  # type: ignore[arg-type]


def test_description_and_kind_for_display() -> None:
    assert parse_schedule("@daily", "Europe/Berlin").description == "cron @daily (0 0 0 * * *) in Europe/Berlin"
    assert "every 1h0m0s" in parse_schedule("@every 1h", job_name="sync").description
    assert parse_schedule("@at 2026-05-01T10:00:00Z").description == "once at 2026-05-01T10:00:00Z"
