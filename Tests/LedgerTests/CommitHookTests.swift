import Foundation
import QDSQL
import Synchronization
import Testing
@testable import Ledger

/// The hook every write transaction calls before it commits (the CLI's audit entry): a
/// long-running process (`qdwallet serve`, the nightly run) calls it millions of times.
@Suite struct CommitHookTests {
    /// The hook is called through the same frames on the thousandth transaction as on the
    /// first. A hook kept where each read wrapped it in another layer of conversion (a
    /// function value read out of generic storage through `inout`) would be called through
    /// two more frames a transaction: slower with every commit, then a stack overflow.
    @Test func theHookIsCalledThroughTheSameFramesEveryTransaction() throws {
        let world = try TestLedger()
        let depths = Mutex<[Int]>([])
        world.store.setBeforeCommit { _ in
            let depth = Thread.callStackReturnAddresses.count
            depths.withLock { $0.append(depth) }
        }
        for _ in 0..<1_000 {
            try world.store.transaction { _, _ in }
        }
        let seen = depths.withLock { $0 }
        #expect(seen.count == 1_000)
        #expect(Set(seen).count == 1, "depths from \(seen.first ?? 0) to \(seen.last ?? 0)")
        world.store.setBeforeCommit(nil)
        try world.store.transaction { _, _ in }
        #expect(depths.withLock { $0.count } == 1_000)
    }
}
