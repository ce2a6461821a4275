import CLibXML2
import Foundation

/// Validates a document against a schema on a thread of its own while its bytes are being
/// written: the writer hands each piece over as it writes it (`write`), and `finish` says
/// whether the whole document was valid. The validator reads exactly the bytes handed over, in
/// their order, through a bounded queue: memory is bounded by `capacity`, whatever the
/// document's size. A validator that stopped early (a document already known to be invalid)
/// takes no more bytes, so the writer never waits on it; `finish` then throws what it found.
/// A writer that gives up calls `cancel`: the thread is stopped and waited for, and nothing of
/// it outlives the call.
public final class XMLValidatorBeside: @unchecked Sendable {
    private let condition = NSCondition()
    /// Pieces handed over and not read yet, with the bytes they hold.
    private var pieces: [[UInt8]] = []
    private var queued = 0
    /// The writer has handed over the last piece.
    private var ended = false
    /// The reader must stop: the writer gave up.
    private var cancelled = false
    /// The validator's thread has returned (`outcome` is set).
    private var done = false
    private var outcome: Result<Void, FeedError> = .success(())
    private let capacity: Int
    /// The validator thread's own: the piece being read and how far.
    private var current: [UInt8] = []
    private var offset = 0

    /// Starts the validator of the document at `path` (named in its errors).
    public init(schema: XMLSchema, path: String, capacity: Int = 4 << 20) {
        self.capacity = max(1, capacity)
        let thread = Thread { [self] in
            let result = Self.validate(self, schema: schema, path: path)
            condition.lock()
            outcome = result
            done = true
            pieces.removeAll()
            queued = 0
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "qdwallet-report-validator"
        thread.start()
    }

    /// Hands over the next bytes of the document; waits while the queue is full. Bytes handed
    /// over after the validator stopped are dropped: it has its answer.
    public func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        condition.lock()
        defer { condition.unlock() }
        while queued >= capacity && !done { condition.wait() }
        guard !done else { return }
        pieces.append(bytes)
        queued += bytes.count
        condition.broadcast()
    }

    /// Says the document is whole, waits for the validator, and throws what it found.
    public func finish() throws(FeedError) {
        condition.lock()
        ended = true
        condition.broadcast()
        while !done { condition.wait() }
        let result = outcome
        condition.unlock()
        try result.get()
    }

    /// Stops the validator and waits for its thread.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while !done { condition.wait() }
        condition.unlock()
    }

    /// The validator thread's read of the next bytes: what was handed over, 0 at the
    /// document's end, -1 once cancelled.
    fileprivate func read(into buffer: UnsafeMutablePointer<CChar>, count: Int) -> Int32 {
        if offset == current.count {
            condition.lock()
            while pieces.isEmpty && !ended && !cancelled { condition.wait() }
            if cancelled {
                condition.unlock()
                return -1
            }
            guard !pieces.isEmpty else {
                condition.unlock()
                return 0
            }
            current = pieces.removeFirst()
            queued -= current.count
            offset = 0
            condition.broadcast()
            condition.unlock()
        }
        let taken = min(count, current.count - offset)
        current.withUnsafeBytes { raw in
            UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + offset, byteCount: taken)
        }
        offset += taken
        return Int32(taken)
    }

    private static func validate(_ source: XMLValidatorBeside, schema: XMLSchema, path: String) -> Result<Void, FeedError> {
        let context = Unmanaged.passUnretained(source).toOpaque()
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_COMPACT.rawValue)
        guard let reader = xmlReaderForIO(readPiece, { _ in 0 }, context, path, nil, options) else {
            return .failure(FeedError(.io, "cannot start the document's validation", context: path))
        }
        defer { xmlFreeTextReader(reader) }
        do {
            try XMLValidator.validate(reader, schema: schema, path: path)
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}

private func readPiece(_ context: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ count: Int32) -> Int32 {
    guard let context, let buffer, count > 0 else { return -1 }
    return Unmanaged<XMLValidatorBeside>.fromOpaque(context).takeUnretainedValue().read(into: buffer, count: Int(count))
}
