import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where a payment password comes from: never an argument.
struct PasswordOptions: ParsableArguments {
    @Flag(name: .long, help: "Read the 6-digit payment password from the first line of stdin (otherwise a terminal prompt).")
    var passwordStdin = false

    /// Reads the password from stdin or from a prompt with echo off.
    func read(prompt: String = "Payment password: ") throws -> String {
        if passwordStdin {
            guard let line = Swift.readLine(strippingNewline: true) else {
                throw CLIFailure(.usage, code: "usage", "--password-stdin was given but stdin is empty")
            }
            return line
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw CLIFailure(.usage, code: "usage", "no terminal to prompt for the password: pass --password-stdin and write it to stdin")
        }
        FileHandle.standardError.write(Data(prompt.utf8))
        var original = termios()
        tcgetattr(STDIN_FILENO, &original)
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return Swift.readLine(strippingNewline: true) ?? ""
    }
}
