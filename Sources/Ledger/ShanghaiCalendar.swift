/// Civil dates and times in Asia/Shanghai (UTC+08:00, no daylight saving since 1991), with
/// integer arithmetic only: business days, calendar months and years for limits and reports.
public enum ShanghaiCalendar {
    /// The offset of Asia/Shanghai from UTC.
    public static let offsetMicros: Int64 = 8 * 3_600 * 1_000_000
    public static let dayMicros: Int64 = 86_400 * 1_000_000

    /// A calendar date.
    public struct Date: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
        public var year: Int
        public var month: Int
        public var day: Int

        public init(year: Int, month: Int, day: Int) {
            self.year = year
            self.month = month
            self.day = day
        }

        /// Parses "YYYY-MM-DD", refusing dates that do not exist.
        public init?(iso text: String) {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
                  parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
                  let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
                  (1...12).contains(month), day >= 1, day <= ShanghaiCalendar.daysIn(year: year, month: month)
            else { return nil }
            self.init(year: year, month: month, day: day)
        }

        public var description: String { iso }

        /// "YYYY-MM-DD". Written digit by digit (the nightly run names a few dates a bill).
        public var iso: String { digits(separator: 45, day: true) ?? pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) }

        /// "YYYY-MM".
        public var monthKey: String { digits(separator: 45, day: false) ?? pad(year, 4) + "-" + pad(month, 2) }

        /// "YYYYMMDD".
        public var compact: String { digits(separator: nil, day: true) ?? pad(year, 4) + pad(month, 2) + pad(day, 2) }

        /// The year's four digits, the month's two and (`day`) the day's two, `separator`
        /// between them; nil for a year outside 0...9999 or a field out of its range, which
        /// the callers write the long way.
        private func digits(separator: UInt8?, day withDay: Bool) -> String? {
            guard (0...9_999).contains(year), (0...99).contains(month), (0...99).contains(day) else { return nil }
            let count = (withDay ? 8 : 6) + (separator == nil ? 0 : (withDay ? 2 : 1))
            return String(unsafeUninitializedCapacity: count) { buffer in
                var at = 0
                func put(_ value: Int, _ width: Int) {
                    var rest = value
                    for index in stride(from: at + width - 1, through: at, by: -1) {
                        buffer[index] = UInt8(48 + rest % 10)
                        rest /= 10
                    }
                    at += width
                }
                put(year, 4)
                if let separator { buffer[at] = separator; at += 1 }
                put(month, 2)
                if withDay {
                    if let separator { buffer[at] = separator; at += 1 }
                    put(day, 2)
                }
                return at
            }
        }

        public static func < (lhs: Date, rhs: Date) -> Bool {
            (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
        }

        /// Days since 1970-01-01.
        public var daysSinceEpoch: Int64 { ShanghaiCalendar.days(fromCivil: self) }

        /// The date `n` days later (or earlier, for negative `n`).
        public func adding(days n: Int) -> Date { ShanghaiCalendar.civil(fromDays: daysSinceEpoch + Int64(n)) }

        /// 00:00 of this date in Shanghai, as UTC microseconds.
        public var startMicros: TimestampMicros { daysSinceEpoch * ShanghaiCalendar.dayMicros - ShanghaiCalendar.offsetMicros }

        /// 1 Monday ... 7 Sunday.
        public var isoWeekday: Int {
            let weekday = Int((daysSinceEpoch + 3) % 7)  // 1970-01-01 was a Thursday
            return (weekday < 0 ? weekday + 7 : weekday) + 1
        }
    }

    /// The Shanghai calendar date at an instant.
    public static func date(at micros: TimestampMicros) -> Date {
        let local = micros + offsetMicros
        var days = local / dayMicros
        if local % dayMicros < 0 { days -= 1 }
        return civil(fromDays: days)
    }

    /// Microseconds since local midnight at an instant.
    public static func microsOfDay(at micros: TimestampMicros) -> Int64 {
        let local = (micros + offsetMicros) % dayMicros
        return local < 0 ? local + dayMicros : local
    }

    /// An instant as RFC 3339 `date-time` in Shanghai's offset, to the second:
    /// 2026-11-28T02:14:09+08:00.
    public static func rfc3339(at micros: TimestampMicros) -> String {
        let seconds = microsOfDay(at: micros) / 1_000_000
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(date(at: micros).iso)T\(two(seconds / 3_600)):\(two(seconds % 3_600 / 60)):\(two(seconds % 60))+08:00"
    }

    /// 00:00 on 1 January of `year`, as UTC microseconds.
    public static func startOfYear(_ year: Int) -> TimestampMicros {
        Date(year: year, month: 1, day: 1).startMicros
    }

    /// 00:00 on the first of the month, as UTC microseconds.
    public static func startOfMonth(year: Int, month: Int) -> TimestampMicros {
        Date(year: year, month: month, day: 1).startMicros
    }

    public static func isLeap(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    public static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Howard Hinnant's days_from_civil.
    static func days(fromCivil date: Date) -> Int64 {
        let y = Int64(date.month <= 2 ? date.year - 1 : date.year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(date.month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(date.day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Howard Hinnant's civil_from_days.
    static func civil(fromDays days: Int64) -> Date {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return Date(year: Int(year), month: Int(month), day: Int(day))
    }
}

private func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
