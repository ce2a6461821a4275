import Foundation
import QDSQL
import QDTestSupport
import Testing
@testable import Billing
@testable import Ledger

/// A wallet's bills: its own, and those of the customer numbers it links (a bill no wallet was
/// given, and one another wallet had before the number was linked here), newest first; never
/// another wallet's bills of numbers it does not link.
@Suite struct WalletBillsTests {
    @Test func aWalletListsItsOwnBillsAndThoseOfTheNumbersItLinks() throws {
        let world = try BillingWorld()
        try world.populate()
        // 13800000001 links QD-WATER 1100234567 (autopay) and QD-GAS 88001234 (autopay off);
        // 13800000002 links QD-WATER 1100234568 (autopay); nobody links 1199999999.
        let water = try FeedIdentityTests.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: "1100234567",
                                               bills: [(id: "W-A", fen: 1_000), (id: "W-U", fen: 2_000), (id: "W-B", fen: 300)],
                                               customerAt: [1: "1199999999", 2: "1100234568"])
        let gas = try FeedIdentityTests.feed(world.directory, biller: "QD-GAS", feedID: "G-1", customer: "88001234", bills: [(id: "G-A", fen: 4_000)])
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": water, "QD-GAS": gas])
        // (The sample power feed of the day is ingested too: its bills are left aside.)
        func listed(_ phone: String, _ status: BillStatus? = nil) throws -> [String] {
            try world.billing.bills(phone: phone, status: status).filter { $0.biller != "QD-POWER" }.map { "\($0.billId) \($0.status)" }
        }
        // Newest first: the gas feed and the water feed were moved in the order they were
        // ingested; within a feed, the bills in their wallets' order.
        let first = try listed("13800000001")
        #expect(Set(first) == ["W-A paid", "G-A payable"], "\(first)")
        #expect(try listed("13800000001", .paid) == ["W-A paid"])
        #expect(try listed("13800000001", .payable) == ["G-A payable"])
        #expect(try listed("13800000001", .unmatched).isEmpty)
        #expect(try listed("13800000002") == ["W-B paid"])
        #expect(try listed("13800000003").isEmpty)

        // Linking the number of an unmatched bill lists it (it names no wallet).
        _ = try world.billing.link(phone: "13800000003", biller: "QD-WATER", customerNo: "1199999999", autopay: false, autopayLimitFen: nil)
        #expect(try listed("13800000003") == ["W-U unmatched"])
        // A number relinked to another wallet lists its earlier bills there too (pay-bill
        // would let that wallet pay them); the wallet that paid keeps its own.
        _ = try world.billing.unlink(phone: "13800000002", biller: "QD-WATER", customerNo: "1100234568")
        _ = try world.billing.link(phone: "13800000006", biller: "QD-WATER", customerNo: "1100234568", autopay: false, autopayLimitFen: nil)
        #expect(try listed("13800000006") == ["W-B paid"])
        #expect(try listed("13800000002") == ["W-B paid"])
        #expect(try Set(listed("13800000001")) == ["W-A paid", "G-A payable"])
        // The order is the rows' order, newest first.
        let rows = try world.rows("SELECT bill_id FROM bills WHERE bill_id IN ('W-A', 'G-A') ORDER BY id DESC").map { try $0[0] as String }
        #expect(try world.billing.bills(phone: "13800000001", status: nil).filter { $0.biller != "QD-POWER" }.map(\.billId) == rows)
    }

    /// Each half of the read goes through its index: never every bill kept.
    @Test(arguments: [false, true])
    func aWalletsBillsAreReadThroughTheirIndexes(status: Bool) throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let binds: [any SQLBindable] = status ? [Int64(1), "paid", 500] : [Int64(1), 500]
        let plan = try world.plan(BillStore.walletBillsSQL(status: status), binds)
        #expect(plan.contains { $0.contains("bills_by_wallet") }, "\(plan)")
        #expect(plan.contains { $0.contains("bills_by_customer") }, "\(plan)")
        #expect(!plan.contains { $0.contains("SCAN b ") || $0.hasSuffix("SCAN b") || $0.contains("SCAN o") || $0.contains("SCAN c") || $0.contains("Seq Scan on bills") }, "\(plan)")
    }
}
