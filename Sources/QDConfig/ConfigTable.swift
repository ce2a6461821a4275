import Foundation
import Ledger
import TOMLKit

/// A configuration file that is not acceptable: which file, which key, what is wrong.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var key: String
    public var problem: String

    public init(file: String, key: String, problem: String) {
        self.file = file
        self.key = key
        self.problem = problem
    }

    public var description: String {
        key.isEmpty ? "\(file): \(problem)" : "\(file): \(key): \(problem)"
    }
}

/// A TOML table read with typed accessors whose errors name the file and the key; unknown
/// keys are errors too, so a misspelt setting never passes silently.
public struct ConfigTable {
    public let file: String
    let table: TOMLTable
    let prefix: String

    /// Parses a TOML file (at most `bytesMax`).
    public static func load(path: String, bytesMax: Int = 1 << 20) throws -> ConfigTable {
        let name = (path as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: name, key: "", problem: "cannot be read")
        }
        guard data.count <= bytesMax else {
            throw ConfigError(file: name, key: "", problem: "larger than \(bytesMax) bytes")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: name, key: "", problem: "is not UTF-8")
        }
        return try parse(text, file: name)
    }

    /// Parses TOML text; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> ConfigTable {
        try precheck(text, file: file)
        do {
            return ConfigTable(file: file, table: try TOMLTable(string: text), prefix: "")
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, key: "", problem: "line \(error.source.begin.line): \(error.description)")
        }
    }

    /// Refuses what the TOML parser should never see: control characters, and table headers
    /// that are not plain key paths (toml++ asserts on some malformed headers, such as
    /// `[[#name]]`, instead of reporting them).
    static func precheck(_ text: String, file: String) throws {
        var line = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            line += 1
            if raw.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\r" }) || raw.unicodeScalars.contains("\u{7F}") {
                throw ConfigError(file: file, key: "", problem: "line \(line): control characters are not allowed")
            }
            let trimmed = raw.drop { $0 == " " || $0 == "\t" }
            // A line that starts with "[" and carries no value syntax is a table header.
            guard trimmed.first == "[", !trimmed.contains(","), !trimmed.contains("="), !trimmed.contains("{") else { continue }
            let header = trimmed.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? trimmed
            let inner = header.trimmingCharacters(in: CharacterSet(charactersIn: "[] \t\r"))
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_-. \"'"))
            let closes = header.trimmingCharacters(in: .whitespaces).hasSuffix("]")
            guard !inner.isEmpty, closes, inner.unicodeScalars.allSatisfy({ allowed.contains($0) }) else {
                throw ConfigError(file: file, key: "", problem: "line \(line): a table header must be [name] or [[name]]")
            }
        }
    }

    public var keys: [String] { table.keys }

    func path(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }

    func error(_ key: String, _ problem: String) -> ConfigError {
        ConfigError(file: file, key: path(key), problem: problem)
    }

    /// Refuses keys outside `known`.
    public func allowOnly(_ known: Set<String>) throws {
        for key in table.keys.sorted() where !known.contains(key) {
            throw error(key, "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
        }
    }

    public func has(_ key: String) -> Bool { table[key] != nil }

    public func string(_ key: String) throws -> String {
        guard let value = table[key] else { throw error(key, "is required") }
        guard let text = value.string else { throw error(key, "must be a string") }
        return text
    }

    public func string(_ key: String, default fallback: String) throws -> String {
        table[key] == nil ? fallback : try string(key)
    }

    public func optionalString(_ key: String) throws -> String? {
        table[key] == nil ? nil : try string(key)
    }

    public func int(_ key: String) throws -> Int {
        guard let value = table[key] else { throw error(key, "is required") }
        guard let number = value.int else { throw error(key, "must be an integer (no decimal point)") }
        return number
    }

    public func int(_ key: String, default fallback: Int, in range: ClosedRange<Int>? = nil) throws -> Int {
        let value = table[key] == nil ? fallback : try int(key)
        if let range, !range.contains(value) {
            throw error(key, "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    public func optionalInt(_ key: String) throws -> Int? {
        table[key] == nil ? nil : try int(key)
    }

    public func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = table[key] else { return fallback }
        guard let flag = value.bool else { throw error(key, "must be true or false") }
        return flag
    }

    public func strings(_ key: String, default fallback: [String] = []) throws -> [String] {
        guard let value = table[key] else { return fallback }
        guard let array = value.array else { throw error(key, "must be an array of strings") }
        return try array.map { element in
            guard let text = element.string else { throw error(key, "must be an array of strings") }
            return text
        }
    }

    public func ints(_ key: String, default fallback: [Int] = []) throws -> [Int] {
        guard let value = table[key] else { return fallback }
        guard let array = value.array else { throw error(key, "must be an array of integers") }
        return try array.map { element in
            guard let number = element.int else { throw error(key, "must be an array of integers") }
            return number
        }
    }

    /// A sub-table, or nil when absent.
    public func table(_ key: String) throws -> ConfigTable? {
        guard let value = table[key] else { return nil }
        guard let sub = value.table else { throw error(key, "must be a table") }
        return ConfigTable(file: file, table: sub, prefix: path(key))
    }

    /// An array of tables (`[[key]]`), or inline tables.
    public func tables(_ key: String) throws -> [ConfigTable] {
        guard let value = table[key] else { return [] }
        guard let array = value.array else { throw error(key, "must be an array of tables") }
        return try array.enumerated().map { index, element in
            guard let sub = element.table else { throw error("\(key)[\(index)]", "must be a table") }
            return ConfigTable(file: file, table: sub, prefix: path("\(key)[\(index)]"))
        }
    }

    /// String values of a table whose keys are free (parameters).
    public func stringMap() throws -> [String: String] {
        var map: [String: String] = [:]
        for key in table.keys {
            guard let value = table[key] else { continue }
            if let text = value.string {
                map[key] = text
            } else if let number = value.int {
                map[key] = String(number)
            } else if let flag = value.bool {
                map[key] = flag ? "true" : "false"
            } else {
                throw error(key, "must be a string, an integer or a boolean")
            }
        }
        return map
    }

    /// An offset date-time (`2026-11-01T00:00:00+08:00`) as microseconds since the epoch.
    public func instantMicros(_ key: String) throws -> Int64 {
        guard let value = table[key] else { throw error(key, "is required") }
        guard let dateTime = value.dateTime else { throw error(key, "must be a date-time with an offset, e.g. 2026-11-01T00:00:00+08:00") }
        guard let offset = dateTime.offset else { throw error(key, "needs an offset (+08:00): a local time is ambiguous") }
        let d = dateTime.date
        let t = dateTime.time
        guard (1...12).contains(d.month), (1...31).contains(d.day), (0...23).contains(t.hour), (0...59).contains(t.minute), (0...60).contains(t.second) else {
            throw error(key, "is not a valid date-time")
        }
        let days = ShanghaiCalendar.Date(year: d.year, month: d.month, day: d.day).daysSinceEpoch
        let seconds = days * 86_400 + Int64(t.hour * 3_600 + t.minute * 60 + min(t.second, 59)) - Int64(offset.offset) * 60
        return seconds * 1_000_000 + Int64(t.nanoSecond / 1_000)
    }
}
