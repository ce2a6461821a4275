import Foundation

/// Writes a command's result: JSON on stdout with `--json`, text otherwise.
struct Output {
    let json: Bool

    /// Encodes with snake_case keys and sorted keys, so scripts and diffs see stable text.
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value), let text = String(data: data, encoding: .utf8) else {
            return "{\"error\":{\"code\":\"internal\",\"message\":\"the result could not be encoded\"}}"
        }
        return text
    }

    /// Prints `value` as JSON, or `text()` for people.
    func emit<T: Encodable>(_ value: T, text: () -> String) {
        if json {
            print(Self.encode(value))
        } else {
            print(text())
        }
    }

    /// Reports a failure: a JSON document on stdout with `--json`, and always a line on stderr.
    static func failure(_ failure: CLIFailure, json: Bool) {
        if json {
            struct Document: Encodable {
                struct Body: Encodable { var code: String; var message: String; var exitCode: Int32 }
                var error: Body
            }
            print(encode(Document(error: .init(code: failure.code, message: failure.message, exitCode: failure.status.rawValue))))
        }
        FileHandle.standardError.write(Data("qdwallet: \(failure.message)\n".utf8))
    }
}
