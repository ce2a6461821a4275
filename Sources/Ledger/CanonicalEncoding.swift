import Crypto

/// A byte encoding with one spelling per value: what the request hash and the journal's hash
/// chain are computed over. Changing it breaks every stored hash, so it is versioned.
struct CanonicalEncoder {
    static let version: UInt8 = 1
    private(set) var bytes: [UInt8]

    /// Starts over in `scratch`'s storage, so a batch hashes without allocating.
    init(reusing scratch: inout [UInt8]) {
        bytes = []
        swap(&bytes, &scratch)
        bytes.removeAll(keepingCapacity: true)
        bytes.append(Self.version)
    }

    /// Hands the storage back for the next hash.
    mutating func finish(into scratch: inout [UInt8]) -> [UInt8] {
        let digest = sha256()
        swap(&bytes, &scratch)
        return digest
    }

    mutating func int(_ value: Int64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func optionalInt(_ value: Int64?) {
        if let value {
            bytes.append(1)
            int(value)
        } else {
            bytes.append(0)
        }
    }

    mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func string(_ value: String) {
        let utf8 = value.utf8
        int(Int64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func raw(_ value: [UInt8]) {
        int(Int64(value.count))
        bytes.append(contentsOf: value)
    }

    func sha256() -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }
}

extension PostingRequest {
    /// SHA-256 over everything of the request that decides its outcome (not `linked`, which
    /// belongs to the batch, not the request).
    func canonicalHash(scratch: inout [UInt8]) -> [UInt8] {
        var encoder = CanonicalEncoder(reusing: &scratch)
        encoder.string(key)
        encoder.string(memo)
        encoder.optionalInt(effectiveAt)
        switch action {
        case .transfer(let legs):
            encoder.byte(1)
            encoder.int(Int64(legs.count))
            for leg in legs {
                encoder.int(leg.accountID)
                encoder.byte(UInt8(leg.side.rawValue))
                encoder.string(leg.asset.rawValue)
                encoder.int(leg.amount)
            }
        case .hold(let debit, let credit, let asset, let amount, let expiresAt):
            encoder.byte(2)
            encoder.int(debit)
            encoder.int(credit)
            encoder.string(asset.rawValue)
            encoder.int(amount)
            encoder.optionalInt(expiresAt)
        case .postHold(let holdID, let amount):
            encoder.byte(3)
            encoder.int(holdID)
            encoder.optionalInt(amount)
        case .voidHold(let holdID):
            encoder.byte(4)
            encoder.int(holdID)
        case .expireHold(let holdID):
            encoder.byte(5)
            encoder.int(holdID)
        case .reverse(let transactionID):
            encoder.byte(6)
            encoder.int(transactionID)
        }
        return encoder.finish(into: &scratch)
    }
}

enum HashChain {
    /// The hash of a seal (PostgreSQL): SHA-256 over the previous seal's hash, the seal's
    /// position, the transaction it seals and that transaction's own hash (which covers its
    /// content). A journal row changed, removed or added outside the ledger breaks it.
    static func seal(previous: [UInt8], pos: Int64, transactionID: TransactionID, contentHash: [UInt8], scratch: inout [UInt8]) -> [UInt8] {
        var encoder = CanonicalEncoder(reusing: &scratch)
        encoder.string("seal")
        encoder.raw(previous)
        encoder.int(pos)
        encoder.int(transactionID)
        encoder.raw(contentHash)
        return encoder.finish(into: &scratch)
    }

    /// The hash of a journal row: SHA-256 over the previous hash and the row's content,
    /// its entries and its hold included.
    static func hash(of record: TransactionRecord, entries: [EntryRecord], hold: HoldRecord?, scratch: inout [UInt8]) -> [UInt8] {
        var encoder = CanonicalEncoder(reusing: &scratch)
        encoder.raw(record.prevHash)
        encoder.int(record.id)
        encoder.string(record.kind.rawValue)
        encoder.string(record.key)
        encoder.optionalInt(record.refID)
        encoder.int(record.recordedAt)
        encoder.int(record.effectiveAt)
        encoder.string(record.memo)
        encoder.int(Int64(entries.count))
        for entry in entries {
            encoder.int(Int64(entry.leg))
            encoder.int(entry.accountID)
            encoder.string(entry.asset.rawValue)
            encoder.byte(UInt8(entry.side.rawValue))
            encoder.int(entry.amount)
            encoder.int(entry.balanceAfter)
            encoder.int(entry.accountSeq)
        }
        if let hold {
            encoder.byte(1)
            encoder.int(hold.debitAccountID)
            encoder.int(hold.creditAccountID)
            encoder.string(hold.asset.rawValue)
            encoder.int(hold.amount)
            encoder.optionalInt(hold.expiresAt)
        } else {
            encoder.byte(0)
        }
        return encoder.finish(into: &scratch)
    }
}
