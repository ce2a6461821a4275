// Fuzz targets for the parsers that take outside input: yuan amounts, QR payloads and bill
// feeds. Every input must either work or give a clear error (the parser's own error type);
// anything else (a trap, a crash, another error) is a finding.
//
//     swift build --product qdwallet-fuzz
//     .build/debug/qdwallet-fuzz amount|qr|feed FILE...
//
// replays files through a target (the seed corpus under Tests/Fuzz/corpus, or a finding).
//
//     Tests/Fuzz/run.sh amount|qr|feed [SECONDS]
//
// builds the same target with `-sanitize=fuzzer` (libFuzzer; every module instrumented) into
// .build-fuzz and fuzzes it from the seed corpus for SECONDS (CI runs each for a short time).
import Feeds
import Foundation
import Ledger
import Wallet

enum FuzzTarget: String, CaseIterable {
    case amount, qr, feed
}

/// Found by the harness itself: a result that breaks the parser's contract.
func finding(_ message: String) -> Never {
    FileHandle.standardError.write(Data("qdwallet-fuzz: FINDING: \(message)\n".utf8))
    abort()
}

struct Harness {
    let target: FuzzTarget
    let schema: XMLSchema?
    let scratch: String

    init(target: FuzzTarget) {
        self.target = target
        scratch = NSTemporaryDirectory() + "qdwallet-fuzz-\(getpid()).xml"
        if target == .feed {
            let directory = ProcessInfo.processInfo.environment["QDWALLET_SCHEMA_DIR"] ?? "SampleFeeds/schema"
            do {
                schema = try XMLSchema(path: directory + "/billfeed.xsd")
            } catch {
                FileHandle.standardError.write(Data("qdwallet-fuzz: cannot load \(directory)/billfeed.xsd (set QDWALLET_SCHEMA_DIR): \(error)\n".utf8))
                exit(2)
            }
        } else {
            schema = nil
        }
    }

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch target {
        case .amount: amount(String(decoding: bytes, as: UTF8.self))
        case .qr: qr(String(decoding: bytes, as: UTF8.self))
        case .feed: feed(bytes)
        }
    }

    /// An amount that parses prints back to text that parses to the same amount.
    func amount(_ text: String) {
        do {
            let money = try Money(yuan: text)
            guard let again = try? Money(yuan: money.yuanString), again == money else {
                finding("\(text.debugDescription) parsed to \(money.fen) fen, which does not round-trip through \(money.yuanString.debugDescription)")
            }
        } catch {
            if String(describing: error).isEmpty { finding("an amount error without a message") }
        }
    }

    /// A payload that parses encodes back to a payload that parses to the same code.
    func qr(_ payload: String) {
        do {
            let code = try MerchantQR.parse(payload)
            // A code that decodes is one the encoder accepts, and it decodes to itself again.
            guard let encoded = try? code.encode(), let again = try? MerchantQR.parse(encoded), again == code else {
                finding("\(payload.debugDescription) parsed to \(code), which does not round-trip")
            }
        } catch {
            if String(describing: error).isEmpty { finding("a QR refusal without a message") }
        }
    }

    /// A feed is read whole or refused with a `FeedError`; the records it hands over are
    /// well formed (positive amounts, due = amount + late fee).
    func feed(_ bytes: UnsafeRawBufferPointer) {
        guard FileManager.default.createFile(atPath: scratch, contents: Data(bytes)) else { finding("cannot write \(scratch)") }
        // Not left in the temporary folder after the run (a finding aborts first: its input
        // is the fuzzer's to keep).
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            _ = try FeedReader(schema: schema!).read(
                path: scratch, expectedBiller: "QD-WATER", expectedDate: nil,
                onHeader: { _ in },
                onBill: { bill in
                    guard bill.amountFen >= 0, bill.lateFeeFen >= 0, bill.dueFen == bill.amountFen + bill.lateFeeFen else {
                        finding("a bill with amount \(bill.amountFen), late fee \(bill.lateFeeFen), due \(bill.dueFen)")
                    }
                },
                onCancel: { _ in })
        } catch let error as FeedError {
            if error.description.isEmpty { finding("a feed error without a message") }
        } catch {
            finding("the feed reader threw something other than a FeedError: \(error)")
        }
    }
}

nonisolated(unsafe) var harness: Harness?

/// libFuzzer's entry (used when built with `-sanitize=fuzzer`); the target comes from
/// QDWALLET_FUZZ_TARGET.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if harness == nil {
        let name = ProcessInfo.processInfo.environment["QDWALLET_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("qdwallet-fuzz: set QDWALLET_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        harness = Harness(target: target)
    }
    harness!.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if QDWALLET_LIBFUZZER
/// libFuzzer's driver, for a program that has its own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runFuzzerDriver(&argc, &argv, { data, size in fuzzTestOneInput(data, size) }))
#else
let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: qdwallet-fuzz amount|qr|feed FILE-OR-FOLDER...\n".utf8))
    exit(2)
}
let replay = Harness(target: target)
var files: [String] = []
for path in arguments.dropFirst() {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
        FileHandle.standardError.write(Data("qdwallet-fuzz: no such file: \(path)\n".utf8))
        exit(2)
    }
    if isFolder.boolValue {
        files += ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
    } else {
        files.append(path)
    }
}
for file in files {
    guard let data = FileManager.default.contents(atPath: file) else { continue }
    data.withUnsafeBytes { replay.run($0) }
}
print("qdwallet-fuzz: \(target.rawValue): \(files.count) inputs replayed, no findings")
#endif
