import Foundation
import QDConfig
import Testing

/// Every configuration mistake is refused with the file, the key and what is wrong; nothing
/// misspelt or mistyped falls back to a default.
@Suite struct ConfigTableTests {
    func refusal(_ text: String, _ read: (ConfigTable) throws -> Void) -> String? {
        do {
            try read(try ConfigTable.parse(text, file: "wallet.toml"))
            return nil
        } catch let error as ConfigError {
            return error.description
        } catch {
            return "unexpected: \(error)"
        }
    }

    @Test func valuesAreReadWithTheirTypes() throws {
        let table = try ConfigTable.parse("""
            name = "青岛"
            count = 42
            on = true
            list = ["a", "b"]
            [inner]
            depth = 3
            """, file: "wallet.toml")
        #expect(try table.string("name") == "青岛")
        #expect(try table.int("count") == 42)
        #expect(try table.bool("on", default: false))
        #expect(try table.strings("list") == ["a", "b"])
        #expect(try table.table("inner")?.int("depth") == 3)
        #expect(try table.int("absent", default: 7) == 7)
        #expect(try table.optionalString("absent") == nil)
    }

    @Test(arguments: [
        ("colour = 1", "wallet.toml: colour: unknown key (expected one of: count, name)"),
        ("count = \"ten\"", "wallet.toml: count: must be an integer (no decimal point)"),
        ("count = 1.5", "wallet.toml: count: must be an integer (no decimal point)"),
        ("count = 1000", "wallet.toml: count: must be between 1 and 100"),
        ("name = 5", "wallet.toml: name: must be a string"),
    ])
    func mistakesNameTheFileTheKeyAndTheProblem(text: String, message: String) {
        #expect(refusal(text) { table in
            try table.allowOnly(["count", "name"])
            _ = try table.int("count", default: 1, in: 1...100)
            _ = try table.string("name", default: "")
        } == message)
    }

    @Test func aRequiredKeyThatIsMissingIsRefused() {
        #expect(refusal("other = 1") { _ = try $0.string("name") } == "wallet.toml: name: is required")
        #expect(refusal("") { _ = try $0.int("count") } == "wallet.toml: count: is required")
    }

    @Test func textTheParserMustNeverSeeIsRefusedFirst() {
        #expect(refusal("name = \"a\u{01}b\"") { _ in } == "wallet.toml: line 1: control characters are not allowed")
        #expect(refusal("[[#name]]") { _ in } == "wallet.toml: line 1: a table header must be [name] or [[name]]")
        #expect(refusal("name = ") { _ in }?.hasPrefix("wallet.toml: line 1") == true)
    }

    @Test func aFileIsReadWholeOnlyWhenSmallAndUTF8() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdconfig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let big = directory.appendingPathComponent("big.toml")
        try Data(repeating: UInt8(ascii: "#"), count: 2_000).write(to: big)
        #expect(throws: ConfigError.self) { _ = try ConfigTable.load(path: big.path, bytesMax: 1_000) }
        let latin = directory.appendingPathComponent("latin.toml")
        try Data([0x6E, 0x3D, 0x22, 0xE9, 0x22]).write(to: latin)
        do {
            _ = try ConfigTable.load(path: latin.path)
            Issue.record("a file that is not UTF-8 was read")
        } catch let error as ConfigError {
            #expect(error.description == "latin.toml: is not UTF-8")
        }
        do {
            _ = try ConfigTable.load(path: directory.appendingPathComponent("missing.toml").path)
            Issue.record("a missing file was read")
        } catch let error as ConfigError {
            #expect(error.description == "missing.toml: cannot be read")
        }
    }
}
