import Testing
@testable import Ledger

/// Shanghai's civil dates as the reports, keys and feeds write them.
@Suite struct CalendarTests {
    /// RFC 3339 §5.6: full-date = date-fullyear "-" date-month "-" date-mday, each a fixed
    /// number of digits (4DIGIT, 2DIGIT, 2DIGIT); date-time adds "T" partial-time and the
    /// offset ("+08:00" for Asia/Shanghai).
    @Test func datesAreWrittenWithFixedDigitsAsRFC3339Says() {
        let date = ShanghaiCalendar.Date(year: 2026, month: 11, day: 7)
        #expect(date.iso == "2026-11-07")
        #expect(date.compact == "20261107")
        #expect(date.monthKey == "2026-11")
        #expect(date.description == "2026-11-07")
        #expect(ShanghaiCalendar.Date(year: 999, month: 1, day: 5).iso == "0999-01-05")
        #expect(ShanghaiCalendar.Date(year: 0, month: 12, day: 31).compact == "00001231")
        #expect(ShanghaiCalendar.Date(year: 10_000, month: 1, day: 1).iso == "10000-01-01")
        // 2026-11-28 02:14:09 in Shanghai is 2026-11-27 18:14:09 UTC.
        let micros = (ShanghaiCalendar.Date(year: 2026, month: 11, day: 27).daysSinceEpoch * 86_400 + 18 * 3_600 + 14 * 60 + 9) * 1_000_000
        #expect(ShanghaiCalendar.rfc3339(at: micros) == "2026-11-28T02:14:09+08:00")
        #expect(ShanghaiCalendar.date(at: micros).iso == "2026-11-28")
    }

    /// Every day from 1900 to 2100 is written, read back and counted alike: the text parses
    /// to the same date, the days since 1970 give the same date back, and the text orders as
    /// the dates do (reports and keys sort dates as text).
    @Test func everyDayOfTwoCenturiesReadsBackAsWritten() {
        var previous: String?
        var days = 0
        for day in ShanghaiCalendar.Date(year: 1900, month: 1, day: 1).daysSinceEpoch...ShanghaiCalendar.Date(year: 2100, month: 12, day: 31).daysSinceEpoch {
            let date = ShanghaiCalendar.civil(fromDays: day)
            let text = date.iso
            #expect(ShanghaiCalendar.Date(iso: text) == date, "\(text)")
            #expect(date.daysSinceEpoch == day)
            #expect(text.utf8.count == 10 && date.compact == text.replacingOccurrences(of: "-", with: ""))
            #expect(date.monthKey == String(text.prefix(7)))
            if let previous { #expect(previous < text, "\(previous) \(text)") }
            previous = text
            days += 1
        }
        #expect(days == 73_414)
        #expect(ShanghaiCalendar.Date(iso: "2026-02-29") == nil)
        #expect(ShanghaiCalendar.Date(iso: "2026-2-28") == nil)
    }
}
