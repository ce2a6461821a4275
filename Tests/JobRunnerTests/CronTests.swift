import Ledger
import Testing
@testable import JobRunner

/// Shanghai wall-clock time as UTC microseconds.
func shanghai(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> TimestampMicros {
    ShanghaiCalendar.Date(year: year, month: month, day: day).startMicros + Int64(hour * 60 + minute) * 60_000_000
}

@Suite struct CronTests {
    @Test(arguments: [
        // expression, after, expected next fire
        ("30 4 * * *", shanghai(2026, 11, 28, 5, 0), shanghai(2026, 11, 29, 4, 30)),
        ("30 4 * * *", shanghai(2026, 11, 28, 4, 29), shanghai(2026, 11, 28, 4, 30)),
        ("30 4 * * *", shanghai(2026, 11, 28, 4, 30), shanghai(2026, 11, 29, 4, 30)),
        ("*/15 * * * *", shanghai(2026, 11, 28, 23, 50), shanghai(2026, 11, 29, 0, 0)),
        ("0 0 31 * *", shanghai(2026, 11, 28), shanghai(2026, 12, 31)),
        ("0 0 31 * *", shanghai(2027, 1, 31, 0, 1), shanghai(2027, 3, 31)),
        ("0 0 29 2 *", shanghai(2026, 3, 1), shanghai(2028, 2, 29)),
        ("59 23 31 12 *", shanghai(2026, 12, 31, 23, 59), shanghai(2027, 12, 31, 23, 59)),
        ("0 9 * * MON", shanghai(2026, 11, 28), shanghai(2026, 11, 30, 9, 0)),
        ("0 9 * * 1-5", shanghai(2026, 11, 27, 10, 0), shanghai(2026, 11, 30, 9, 0)),
        ("0 12 * * 7", shanghai(2026, 11, 28), shanghai(2026, 11, 29, 12, 0)),
        ("0 12 * * 0", shanghai(2026, 11, 28), shanghai(2026, 11, 29, 12, 0)),
        // Day-of-month and day-of-week both restricted: either matches.
        ("0 8 1 * MON", shanghai(2026, 11, 24), shanghai(2026, 11, 30, 8, 0)),
        ("0 8 1 * MON", shanghai(2026, 11, 30, 9, 0), shanghai(2026, 12, 1, 8, 0)),
        ("0 2 * JAN,JUL *", shanghai(2026, 11, 28), shanghai(2027, 1, 1, 2, 0)),
        ("5,35 1-2 * * *", shanghai(2026, 11, 28, 1, 5), shanghai(2026, 11, 28, 1, 35)),
        ("5,35 1-2 * * *", shanghai(2026, 11, 28, 2, 35), shanghai(2026, 11, 29, 1, 5)),
        // Midnight in Shanghai is 16:00 UTC the day before.
        ("0 0 * * *", shanghai(2026, 11, 28, 12, 0), ShanghaiCalendar.Date(year: 2026, month: 11, day: 29).startMicros),
    ] as [(String, TimestampMicros, TimestampMicros)])
    func nextFire(expression: String, after: TimestampMicros, expected: TimestampMicros) throws {
        #expect(try CronExpression(expression).next(after: after) == expected)
    }

    /// crontab(5) as cronie implements it (`src/cron.c`, `find_jobs`): the day-of-month and
    /// day-of-week bits are always both tested; when either field starts with `*` (the
    /// `DOM_STAR`/`DOW_STAR` flags) a day must match both, otherwise either. Names may stand
    /// in ranges and lists, and 0 and 7 are both Sunday (crontab(5), "day of week 0-7").
    /// 2026-11-28 is a Saturday.
    @Test(arguments: [
        // A stepped day of month with * day of week: every third day from the 1st, not every day.
        ("0 0 */3 * *", shanghai(2026, 11, 28), shanghai(2026, 12, 1)),
        ("0 0 */3 * *", shanghai(2026, 12, 1), shanghai(2026, 12, 4)),
        ("0 0 */3 * *", shanghai(2026, 12, 28, 1, 0), shanghai(2026, 12, 31)),
        // A stepped day of month with a named weekday: both must match (odd-day Saturdays).
        ("0 16 */2 * sat", shanghai(2026, 11, 27), shanghai(2026, 12, 5, 16, 0)),
        ("0 16 */2 * sat", shanghai(2026, 12, 5, 17, 0), shanghai(2026, 12, 19, 16, 0)),
        // A stepped day of week with * day of month: every other day of the week.
        ("0 9 * * */2", shanghai(2026, 11, 28, 10, 0), shanghai(2026, 11, 29, 9, 0)),
        ("0 9 * * */2", shanghai(2026, 11, 29, 10, 0), shanghai(2026, 12, 1, 9, 0)),
        // Neither starts with *: a day matching either fires.
        ("0 0 1-7 * MON", shanghai(2026, 11, 28), shanghai(2026, 11, 30)),
        ("0 0 1-7 * MON", shanghai(2026, 11, 30, 1, 0), shanghai(2026, 12, 1)),
        // Names in ranges and lists, any case.
        ("0 9 * * Mon-Fri", shanghai(2026, 11, 27, 10, 0), shanghai(2026, 11, 30, 9, 0)),
        ("0 9 * * Sat,Sun", shanghai(2026, 11, 27, 10, 0), shanghai(2026, 11, 28, 9, 0)),
        ("0 9 * * Sat,Sun", shanghai(2026, 11, 29, 10, 0), shanghai(2026, 12, 5, 9, 0)),
        ("0 2 1 Jan-Mar *", shanghai(2026, 11, 28), shanghai(2027, 1, 1, 2, 0)),
        ("0 2 1 Jan-Mar *", shanghai(2027, 3, 1, 3, 0), shanghai(2028, 1, 1, 2, 0)),
        ("0 2 1 jan,jul *", shanghai(2027, 1, 2), shanghai(2027, 7, 1, 2, 0)),
        // 7 is Sunday, in a range too; FRI-SUN runs to Sunday.
        ("0 12 * * 5-7", shanghai(2026, 11, 28, 13, 0), shanghai(2026, 11, 29, 12, 0)),
        ("0 12 * * 5-7", shanghai(2026, 11, 29, 13, 0), shanghai(2026, 12, 4, 12, 0)),
        ("0 12 * * Fri-Sun", shanghai(2026, 11, 29, 13, 0), shanghai(2026, 12, 4, 12, 0)),
        ("0 12 * * Sun-Sat", shanghai(2026, 11, 28, 13, 0), shanghai(2026, 11, 29, 12, 0)),
        ("0 12 * * 1-5/2", shanghai(2026, 11, 28), shanghai(2026, 11, 30, 12, 0)),
        ("0 12 * * 1-5/2", shanghai(2026, 11, 30, 13, 0), shanghai(2026, 12, 2, 12, 0)),
    ] as [(String, TimestampMicros, TimestampMicros)])
    func followsVixieCronDaySemantics(expression: String, after: TimestampMicros, expected: TimestampMicros) throws {
        #expect(try CronExpression(expression).next(after: after) == expected)
    }

    /// crontab(5): a range "runs from low to high"; one that really runs backwards is refused.
    @Test(arguments: ["* * * * SAT-MON", "* * * MAR-JAN *", "* * 31-1 * *", "* * * * 6-1"])
    func refusesBackwardsRanges(expression: String) {
        #expect {
            _ = try CronExpression(expression)
        } throws: { error in
            "\(error)".contains("backwards")
        }
    }

    @Test func impossibleDatesNeverFire() throws {
        #expect(try CronExpression("0 0 30 2 *").next(after: shanghai(2026, 1, 1)) == nil)
    }

    @Test(arguments: [
        ("* * * *", "needs 5 fields"), ("60 * * * *", "minute field"), ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day-of-month"), ("* * * 13 *", "month field"), ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"), ("1,,2 * * * *", "empty"), ("* * * FOO *", "month field"),
    ])
    func refusesBadExpressions(expression: String, problem: String) {
        #expect {
            _ = try CronExpression(expression)
        } throws: { error in
            "\(error)".contains(problem)
        }
    }
}
