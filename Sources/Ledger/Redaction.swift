/// Text fit for logs, output and storage: secrets taken out.
public enum Redaction {
    /// A URL without its user name and password (`sftp://***@host/...`).
    public static func url(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@"),
              !url[scheme.upperBound..<at].contains("/") else { return url }
        return String(url[..<scheme.upperBound]) + "***@" + String(url[url.index(after: at)...])
    }

    /// Parameters with every URL-like value redacted, for what is stored and printed.
    public static func parameters(_ parameters: [String: String]) -> [String: String] {
        parameters.mapValues { $0.contains("://") ? url($0) : $0 }
    }
}
