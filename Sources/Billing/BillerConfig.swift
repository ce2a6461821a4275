import Feeds
import Foundation
import Ledger
import QDConfig

/// A biller as configured in `Jobs/billers.toml`. More billers are configuration, not code.
public struct Biller: Sendable, Hashable, Codable {
    public var code: String
    public var name: String
    public var category: String
    /// Allowed lengths of a customer number (digits only).
    public var customerNoDigitsMin: Int
    public var customerNoDigitsMax: Int
    /// Where the day's feed is: {date} (YYYY-MM-DD), {yyyymmdd}, {root} (the folder above
    /// Jobs/) and {reports} are replaced.
    public var feedURL: String
    /// Where the day's payment report goes, with the same placeholders.
    public var resultURL: String
    public var feedBytesMax: Int64
    /// The biller's sftp server's SSH host key, pinned (base64 SHA-256, as `ssh-keygen -l`
    /// prints it); without it an sftp URL needs a known-hosts file.
    public var sshHostKeySHA256: String?

    public init(code: String, name: String, category: String, customerNoDigitsMin: Int, customerNoDigitsMax: Int, feedURL: String, resultURL: String, feedBytesMax: Int64, sshHostKeySHA256: String? = nil) {
        self.code = code
        self.name = name
        self.category = category
        self.customerNoDigitsMin = customerNoDigitsMin
        self.customerNoDigitsMax = customerNoDigitsMax
        self.feedURL = feedURL
        self.resultURL = resultURL
        self.feedBytesMax = feedBytesMax
        self.sshHostKeySHA256 = sshHostKeySHA256
    }

    public func validCustomerNo(_ text: String) -> Bool {
        (customerNoDigitsMin...customerNoDigitsMax).contains(text.utf8.count) && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    /// A URL template filled in for a day.
    public static func fill(_ template: String, date: ShanghaiCalendar.Date, root: String, reports: String) -> String {
        template
            .replacingOccurrences(of: "{date}", with: date.iso)
            .replacingOccurrences(of: "{yyyymmdd}", with: date.compact)
            .replacingOccurrences(of: "{root}", with: root)
            .replacingOccurrences(of: "{reports}", with: reports)
    }

    /// Reads every `[[biller]]` of a billers file, naming file and key in errors.
    public static func load(path: String) throws -> [Biller] {
        let config = try ConfigTable.load(path: path)
        try config.allowOnly(["biller"])
        var billers: [Biller] = []
        for table in try config.tables("biller") {
            try table.allowOnly(["code", "name", "category", "customer_no_digits", "feed_url", "result_url", "feed_bytes_max", "ssh_host_key_sha256"])
            let code = try table.string("code")
            guard code.range(of: "^[A-Z][A-Z0-9-]{1,15}$", options: .regularExpression) != nil else {
                throw ConfigError(file: config.file, key: "biller.code", problem: "\"\(code)\" must be 2 to 16 upper-case letters, digits or '-', starting with a letter")
            }
            guard !billers.contains(where: { $0.code == code }) else {
                throw ConfigError(file: config.file, key: "biller.code", problem: "\(code) is defined twice")
            }
            let digits = try table.ints("customer_no_digits", default: [6, 20])
            guard digits.count == 2, digits[0] >= 1, digits[0] <= digits[1], digits[1] <= 20 else {
                throw ConfigError(file: config.file, key: "biller.customer_no_digits", problem: "must be [min, max] with 1 <= min <= max <= 20")
            }
            let hostKey = try table.optionalString("ssh_host_key_sha256")
            if let hostKey {
                do { _ = try FeedFetcher.hostKeyFingerprint(hostKey) } catch {
                    throw ConfigError(file: config.file, key: "biller.ssh_host_key_sha256", problem: "\(code): \(error.message)")
                }
            }
            billers.append(Biller(
                code: code, name: try table.string("name"), category: try table.string("category"),
                customerNoDigitsMin: digits[0], customerNoDigitsMax: digits[1],
                feedURL: try table.string("feed_url"), resultURL: try table.string("result_url"),
                feedBytesMax: Int64(try table.int("feed_bytes_max", default: 512 * 1_024 * 1_024, in: 1_024...(8 << 30))),
                sshHostKeySHA256: hostKey))
        }
        return billers
    }
}
