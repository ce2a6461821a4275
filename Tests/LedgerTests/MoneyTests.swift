import Testing
@testable import Ledger

@Suite struct MoneyTests {
    @Test(arguments: [
        ("45.2", 4_520), ("45.20", 4_520), ("0.01", 1), ("0", 0), ("0.00", 0), ("7", 700),
        ("007.50", 750), ("92233720368547758.07", Int64.max), ("100000.00", 10_000_000),
    ] as [(String, Int64)])
    func parsesYuan(text: String, fen: Int64) throws {
        #expect(try Money(yuan: text).fen == fen)
    }

    @Test(arguments: [
        ("45.205", "more than two digits"),
        ("-1", "signs are not allowed"),
        ("+1", "signs are not allowed"),
        ("1e3", "exponents are not allowed"),
        ("4,520.00", "digit grouping"),
        ("4 520", "digit grouping"),
        ("", "empty"),
        (".5", "digits are needed before"),
        ("5.", "digits are needed after"),
        ("1.2.3", "more than one decimal point"),
        ("１２", "only digits"),
        ("12a", "only digits"),
        ("NaN", "only digits"),
        ("92233720368547758.08", "too large"),
        ("99999999999999999999", "too large"),
    ])
    func refusesBadYuan(text: String, reason: String) {
        #expect {
            _ = try Money(yuan: text)
        } throws: { error in
            guard let error = error as? MoneyParseError else { return false }
            return error.reason.contains(reason) && error.description.contains("invalid amount")
        }
    }

    @Test(arguments: [
        (4_520, "45.20"), (1, "0.01"), (0, "0.00"), (10, "0.10"), (-1, "-0.01"), (-12_345, "-123.45"),
        (Int64.max, "92233720368547758.07"), (Int64.min, "-92233720368547758.08"),
    ] as [(Int64, String)])
    func formatsYuan(fen: Int64, text: String) {
        #expect(Money(fen: fen).yuanString == text)
    }

    @Test func roundTripsEveryFenUpToTenYuan() throws {
        for fen in Int64(0)...1_000 {
            #expect(try Money(yuan: Money(fen: fen).yuanString).fen == fen)
        }
    }

    @Test func arithmeticIsOverflowChecked() throws {
        #expect(try Money(fen: 1).adding(Money(fen: 2)).fen == 3)
        #expect(try Money(fen: 1).subtracting(Money(fen: 2)).fen == -1)
        #expect(try Money(fen: 3).multiplied(by: 4).fen == 12)
        #expect(try Money(fen: Int64.max - 1).adding(Money(fen: 1)).fen == Int64.max)
        #expect(throws: MoneyOverflowError.self) { try Money(fen: Int64.max).adding(Money(fen: 1)) }
        #expect(throws: MoneyOverflowError.self) { try Money(fen: Int64.min).subtracting(Money(fen: 1)) }
        #expect(throws: MoneyOverflowError.self) { try Money(fen: Int64.max / 2 + 1).multiplied(by: 2) }
    }

    @Test func longInputIsNotEchoedWhole() {
        let text = String(repeating: "9", count: 40) + "x"
        #expect {
            _ = try Money(yuan: text)
        } throws: { error in
            "\(error)".count < 90
        }
    }
}
