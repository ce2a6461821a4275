import ArgumentParser
import Foundation
import Wallet

/// `qdwallet keys rotate`
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "The personal-data key.", subcommands: [ID.self, Rotate.self])

    struct ID: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the id of the data key in QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE, and the id of the database's key.",
            discussion: "An id is the first 8 bytes of the key's SHA-256, in hex: it tells keys apart and reveals nothing of them. A command given a key whose id differs from the database's refuses to run.")
        @OptionGroup var global: GlobalOptions

        struct Result: Encodable {
            var keyId: String?
            var databaseKeyId: String?
            var matches: Bool
        }

        func run() throws {
            let environment = QDEnvironment.process
            let key = environment.hasDataKey ? try DataKey.fromEnvironment(environment.dataKeyEnvironment) : nil
            let recorded = try AppDatabase.wallet(global, mode: .existingForReading).recordedDataKeyID()
            let result = Result(keyId: key?.keyIDHex, databaseKeyId: recorded, matches: key != nil && key?.keyIDHex == recorded)
            Output(json: global.json).emit(result) {
                [
                    "key given:          " + (result.keyId ?? "none (set QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE)"),
                    "database's key:     " + (result.databaseKeyId ?? "none recorded yet (the first key used is recorded)"),
                    result.matches ? "the key given is the database's key" : (result.keyId != nil && result.databaseKeyId != nil ? "the key given is NOT the database's key" : ""),
                ].filter { !$0.isEmpty }.joined(separator: "\n")
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-seal all stored personal data under a new data key, in one transaction.",
            discussion: "The current key comes from QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE as usual; the new one from --new-key-file (base64 of 32 bytes). Afterwards, point QDWALLET_DATA_KEY_FILE at the new key.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("new-key-file"), help: "A file holding the new key, base64 of 32 bytes.") var newKeyFile: String

        func run() throws {
            let old = try DataKey.fromEnvironment(QDEnvironment.process.dataKeyEnvironment)
            let new = try DataKey.fromEnvironment(["QDWALLET_DATA_KEY_FILE": newKeyFile])
            let rotation = try AppDatabase.wallet(global).rotateDataKey(from: old, to: new)
            Output(json: global.json).emit(rotation) {
                "re-sealed \(rotation.kycSubmissions) real-name submissions, \(rotation.cards) cards and \(rotation.passwords) payment passwords under the new key (\(rotation.alreadyUnderNewKey) were already under it)"
            }
        }
    }
}
