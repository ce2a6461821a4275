import ArgumentParser
import Foundation
import Wallet

/// `qdwallet keys rotate`
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "The personal-data key.", subcommands: [Rotate.self])

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-seal all stored personal data under a new data key, in one transaction.",
            discussion: "The current key comes from QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE as usual; the new one from --new-key-file (base64 of 32 bytes). Afterwards, point QDWALLET_DATA_KEY_FILE at the new key.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("new-key-file"), help: "A file holding the new key, base64 of 32 bytes.") var newKeyFile: String

        func run() throws {
            let old = try DataKey.fromEnvironment()
            let new = try DataKey.fromEnvironment(["QDWALLET_DATA_KEY_FILE": newKeyFile])
            let rotation = try AppDatabase.wallet(global).rotateDataKey(from: old, to: new)
            Output(json: global.json).emit(rotation) {
                "re-sealed \(rotation.kycSubmissions) real-name submissions and \(rotation.cards) cards under the new key (\(rotation.alreadyUnderNewKey) were already under it)"
            }
        }
    }
}
