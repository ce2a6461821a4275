import Ledger

/// A five-field cron expression (minute hour day-of-month month day-of-week) evaluated in
/// Asia/Shanghai, with lists, ranges, steps and names (JAN, MON, in ranges and lists too),
/// and 0 or 7 for Sunday, as crontab(5) of Vixie cron and cronie defines them.
///
/// Day-of-month and day-of-week follow cronie's `entry.c`/`cron.c`: both fields are always
/// tested; when either field starts with `*` (`*`, `*/2`), a day must match both, otherwise
/// a day matching either fires. So `0 0 */3 * *` fires on days 1, 4, 7, ... and
/// `0 16 */2 * sat` on Saturdays that fall on an odd day of the month.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 = Sunday ... 6 = Saturday (7 is read as 0).
    let daysOfWeek: Set<Int>
    /// True when either day field starts with `*`: then a day must match both day fields.
    let dayFieldsBothMustMatch: Bool

    public var description: String { text }

    /// Parses an expression; the error says which field is wrong and why.
    public init(_ text: String) throws(CronError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronError(expression: text, problem: "needs 5 fields (minute hour day-of-month month day-of-week), found \(fields.count)")
        }
        self.text = fields.joined(separator: " ")
        minutes = try Self.field(fields[0], name: "minute", range: 0...59, names: [:], expression: text)
        hours = try Self.field(fields[1], name: "hour", range: 0...23, names: [:], expression: text)
        daysOfMonth = try Self.field(fields[2], name: "day-of-month", range: 1...31, names: [:], expression: text)
        months = try Self.field(fields[3], name: "month", range: 1...12, names: [
            "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
        ], expression: text)
        let dow = try Self.field(fields[4], name: "day-of-week", range: 0...7, names: [
            "SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6,
        ], expression: text)
        daysOfWeek = Set(dow.map { $0 == 7 ? 0 : $0 })
        dayFieldsBothMustMatch = fields[2].hasPrefix("*") || fields[4].hasPrefix("*")
    }

    private static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String: Int], expression: String) throws(CronError) -> Set<Int> {
        func value(_ token: Substring) throws(CronError) -> Int {
            if let number = Int(token), range.contains(number) { return number }
            if let named = names[token.uppercased()] { return named }
            throw CronError(expression: expression, problem: "\(name) field: \"\(token)\" is not in \(range.lowerBound)-\(range.upperBound)")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw CronError(expression: expression, problem: "\(name) field: empty list element") }
            let stepParts = part.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2 else { throw CronError(expression: expression, problem: "\(name) field: more than one '/'") }
            var step = 1
            if stepParts.count == 2 {
                guard let parsed = Int(stepParts[1]), parsed > 0 else {
                    throw CronError(expression: expression, problem: "\(name) field: step \"\(stepParts[1])\" must be a positive number")
                }
                step = parsed
            }
            let base = stepParts[0]
            var low: Int
            var high: Int
            if base == "*" {
                low = range.lowerBound
                high = range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                // SUN is both 0 and 7 (crontab(5)): a range of names that ends on it, such as
                // FRI-SUN, runs to 7 and does not run backwards.
                if high == 0, low > 0, range.upperBound == 7, base[base.index(after: dash)...].uppercased() == "SUN" { high = 7 }
                guard low <= high else { throw CronError(expression: expression, problem: "\(name) field: range \(base) runs backwards") }
            } else {
                low = try value(base)
                high = stepParts.count == 2 ? range.upperBound : low
            }
            for v in stride(from: low, through: high, by: step) { result.insert(v) }
        }
        return result
    }

    private func dayMatches(_ date: ShanghaiCalendar.Date) -> Bool {
        guard months.contains(date.month) else { return false }
        let dom = daysOfMonth.contains(date.day)
        let dow = daysOfWeek.contains(date.isoWeekday % 7)
        return dayFieldsBothMustMatch ? (dom && dow) : (dom || dow)
    }

    /// The first fire time strictly after `after` (whole minutes, Shanghai time), or nil when
    /// none falls within `daysMax` days (an expression such as 30 February).
    public func next(after: TimestampMicros, daysMax: Int = 366 * 5) -> TimestampMicros? {
        let minuteMicros: Int64 = 60_000_000
        // The next whole minute after `after`.
        var start = (after / minuteMicros + 1) * minuteMicros
        if after < 0 && after % minuteMicros != 0 { start = (after / minuteMicros) * minuteMicros }
        var date = ShanghaiCalendar.date(at: start)
        var minuteOfDay = Int(ShanghaiCalendar.microsOfDay(at: start) / minuteMicros)
        let sortedHours = hours.sorted()
        let sortedMinutes = minutes.sorted()
        for _ in 0...daysMax {
            if dayMatches(date) {
                for hour in sortedHours where hour * 60 + 59 >= minuteOfDay {
                    for minute in sortedMinutes where hour * 60 + minute >= minuteOfDay {
                        return date.startMicros + Int64(hour * 60 + minute) * minuteMicros
                    }
                }
            }
            date = date.adding(days: 1)
            minuteOfDay = 0
        }
        return nil
    }
}

/// A cron expression that cannot be used, and why.
public struct CronError: Error, Sendable, Hashable, CustomStringConvertible {
    public var expression: String
    public var problem: String
    public var description: String { "schedule \"\(expression)\": \(problem)" }
}
