import Foundation
import Ledger

/// Turns command-line text into values; bad input is a refusal (exit 1) with the reason.
enum Arguments {
    /// A yuan decimal to fen, at least 0.01. A negative amount is refused with what to do
    /// instead: amounts are positive, the command says the direction.
    static func amount(_ text: String) throws -> Int64 {
        if text.trimmingCharacters(in: .whitespaces).hasPrefix("-") {
            throw CLIFailure(.refused, code: "invalid_amount", "invalid amount \"\(text.prefix(32))\": amounts are positive; the command says which way the money moves (withdraw instead of a negative top-up)")
        }
        let money = try Money(yuan: text)
        guard money.fen > 0 else {
            throw CLIFailure(.refused, code: "invalid_amount", "invalid amount \"\(text)\": the amount must be at least 0.01")
        }
        return money.fen
    }

    /// The caller's idempotency key, or a fresh one: a command without a key is a new request.
    static func idempotencyKey(_ given: String?) -> String {
        given ?? UUID().uuidString.lowercased()
    }

    /// "YYYY-MM".
    static func month(_ text: String) throws -> String {
        guard text.count == 7, ShanghaiCalendar.Date(iso: text + "-01") != nil else {
            throw CLIFailure(.refused, code: "invalid_month", "invalid month \"\(text.prefix(16))\": write it as YYYY-MM, e.g. 2026-11")
        }
        return text
    }
}
