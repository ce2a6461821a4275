import Foundation

/// A feed read ahead: a thread parses and validates the feed while the writer is busy with
/// the feed before it, and writes the records to a file of its own (the spool, readable by
/// its owner only, as the feed is); the writer later hands them over from the spool as `read`
/// would have, in the same order, and then the same ending: the summary, or the fault `read`
/// threw after the records before it. Memory stays that of one piece of the file.
public struct FeedSpool: Sendable {
    /// How the read of the feed ended.
    public enum Ending: Sendable {
        case done(FeedSummary)
        case failed(any Error)
    }

    /// A spool that could not be written or read back (the disk, not the feed): the caller
    /// reads the feed itself instead.
    public struct Fault: Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    public let ending: Ending

    /// Bytes written or read at once.
    static let piece = 1 << 20

    /// A record's first byte. `end` closes a spool written whole, with the number of
    /// records before it: a spool cut short (between records too) is never replayed as a
    /// shorter feed.
    enum Tag: UInt8 {
        case header = 1, bill = 2, cancel = 3, end = 4
    }

    /// Reads the feed at `path` with `reader` and spools its records to `spoolPath` (made
    /// anew, mode 0600). Throws only `Fault`, when the spool cannot be written; a fault of
    /// the feed is its ending.
    public static func write(reader: FeedReader, path: String, expectedBiller: String, expectedDate: String?, to spoolPath: String) throws -> FeedSpool {
        try? FileManager.default.removeItem(atPath: spoolPath)
        guard FileManager.default.createFile(atPath: spoolPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: spoolPath) else {
            throw Fault(description: "cannot make the spool file \(spoolPath)")
        }
        defer { try? handle.close() }
        var out = Encoder(handle: handle)
        let ending: Ending
        do {
            let summary = try reader.read(
                path: path, expectedBiller: expectedBiller, expectedDate: expectedDate,
                onHeader: { header in
                    try out.tag(.header)
                    out.text(header.feedID)
                    out.text(header.billerCode)
                    out.text(header.createdAt)
                    out.text(header.businessDate)
                    out.int(Int64(header.billCount))
                    out.int(header.controlSumFen)
                },
                onBill: { bill in
                    try out.tag(.bill)
                    out.text(bill.billID)
                    out.text(bill.customerNo)
                    out.text(bill.customerName)
                    out.text(bill.district)
                    out.text(bill.period)
                    out.text(bill.usage)
                    out.text(bill.usageUnit)
                    out.int(bill.amountFen)
                    out.int(bill.lateFeeFen)
                    out.text(bill.issueDate)
                    out.text(bill.dueDate)
                },
                onCancel: { cancel in
                    try out.tag(.cancel)
                    out.text(cancel.billID)
                    out.text(cancel.reason)
                })
            ending = .done(summary)
        } catch let fault as Fault {
            throw fault
        } catch {
            ending = .failed(error)
        }
        try out.tag(.end)
        out.int(out.records)
        try out.flush()
        return FeedSpool(path: spoolPath, ending: ending)
    }

    /// Hands over the spooled records in order, then returns the summary or throws the fault
    /// the read ended with. A handler's error ends the replay there. A spool that cannot be
    /// read whole throws `Fault`: never a feed taken as shorter than it was.
    public func replay(onHeader: (FeedHeader) throws -> Void, onBill: (FeedBill) throws -> Void, onCancel: (FeedCancel) throws -> Void) throws -> FeedSummary {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw Fault(description: "cannot read the spool file \(path)")
        }
        defer { try? handle.close() }
        var input = Decoder(handle: handle)
        var records: Int64 = 0
        while true {
            guard let tag = try input.tag() else { throw Fault(description: "the spool file \(path) ends before its last record") }
            if tag == .end {
                guard try input.int() == records, try input.tag() == nil else { throw Fault(description: "the spool file \(path) does not hold what was written to it") }
                break
            }
            records += 1
            switch tag {
            case .header:
                try onHeader(FeedHeader(feedID: try input.text(), billerCode: try input.text(), createdAt: try input.text(), businessDate: try input.text(),
                                        billCount: Int(try input.int()), controlSumFen: try input.int()))
            case .bill:
                try onBill(FeedBill(billID: try input.text(), customerNo: try input.text(), customerName: try input.text(), district: try input.text(), period: try input.text(),
                                    usage: try input.text(), usageUnit: try input.text(), amountFen: try input.int(), lateFeeFen: try input.int(),
                                    issueDate: try input.text(), dueDate: try input.text()))
            case .cancel:
                try onCancel(FeedCancel(billID: try input.text(), reason: try input.text()))
            case .end:
                break
            }
        }
        switch ending {
        case .done(let summary): return summary
        case .failed(let error): throw error
        }
    }

    /// Removes the spool file.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Records as bytes: a tag, then each text as its length (4 bytes) and UTF-8, each
    /// integer as 8 bytes, little-endian; written a piece at a time.
    struct Encoder {
        let handle: FileHandle
        var buffer: [UInt8] = []
        /// Records written (the end's tag not counted).
        var records: Int64 = 0

        init(handle: FileHandle) {
            self.handle = handle
            buffer.reserveCapacity(FeedSpool.piece + 4_096)
        }

        mutating func tag(_ tag: Tag) throws {
            if buffer.count >= FeedSpool.piece { try flush() }
            if tag != .end { records += 1 }
            buffer.append(tag.rawValue)
        }

        mutating func text(_ text: String) {
            var text = text
            text.withUTF8 { bytes in
                withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { buffer.append(contentsOf: $0) }
                buffer.append(contentsOf: bytes)
            }
        }

        mutating func int(_ value: Int64) {
            withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
        }

        mutating func flush() throws {
            guard !buffer.isEmpty else { return }
            do {
                try handle.write(contentsOf: buffer)
            } catch {
                throw Fault(description: "cannot write the spool file: \(error)")
            }
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// Reads what `Encoder` wrote, a piece of the file at a time.
    struct Decoder {
        let handle: FileHandle
        var buffer: [UInt8] = []
        var position = 0
        var ended = false

        init(handle: FileHandle) { self.handle = handle }

        /// At least `count` bytes available from `position`, or false at the file's end.
        mutating func fill(_ count: Int) throws -> Bool {
            while buffer.count - position < count && !ended {
                buffer.removeSubrange(0..<position)
                position = 0
                let piece: Data?
                do {
                    piece = try handle.read(upToCount: FeedSpool.piece)
                } catch {
                    throw Fault(description: "cannot read the spool file: \(error)")
                }
                if let piece, !piece.isEmpty { buffer.append(contentsOf: piece) } else { ended = true }
            }
            return buffer.count - position >= count
        }

        /// The next record's tag; nil at the end of the file, between records only.
        mutating func tag() throws -> Tag? {
            guard try fill(1) else { return nil }
            guard let tag = Tag(rawValue: buffer[position]) else { throw Fault(description: "the spool file holds an unknown record") }
            position += 1
            return tag
        }

        mutating func int() throws -> Int64 {
            guard try fill(8) else { throw Fault(description: "the spool file ends inside a record") }
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(buffer[position + index]) << (8 * UInt64(index)) }
            position += 8
            return Int64(bitPattern: value)
        }

        mutating func text() throws -> String {
            guard try fill(4) else { throw Fault(description: "the spool file ends inside a record") }
            var length = 0
            for index in 0..<4 { length |= Int(buffer[position + index]) << (8 * index) }
            position += 4
            guard length <= FeedSpool.piece else { throw Fault(description: "the spool file holds a text longer than any field") }
            guard try fill(length) else { throw Fault(description: "the spool file ends inside a record") }
            let text = String(decoding: buffer[position..<(position + length)], as: UTF8.self)
            position += length
            return text
        }
    }
}
