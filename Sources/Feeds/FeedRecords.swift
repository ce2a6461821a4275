import Ledger

/// The header of a bill feed.
public struct FeedHeader: Sendable, Hashable, Codable {
    public var feedID: String
    public var billerCode: String
    public var createdAt: String
    public var businessDate: String
    public var billCount: Int
    public var controlSumFen: Int64
}

/// One bill of a feed, amounts in fen.
public struct FeedBill: Sendable, Hashable {
    public var billID: String
    public var customerNo: String
    public var customerName: String
    public var district: String
    public var period: String
    public var usage: String
    public var usageUnit: String
    public var amountFen: Int64
    public var lateFeeFen: Int64
    public var issueDate: String
    public var dueDate: String

    /// What the resident owes: Amount + LateFee.
    public var dueFen: Int64 { amountFen &+ lateFeeFen }

    public init(billID: String = "", customerNo: String = "", customerName: String = "", district: String = "", period: String = "", usage: String = "", usageUnit: String = "", amountFen: Int64 = 0, lateFeeFen: Int64 = 0, issueDate: String = "", dueDate: String = "") {
        self.billID = billID
        self.customerNo = customerNo
        self.customerName = customerName
        self.district = district
        self.period = period
        self.usage = usage
        self.usageUnit = usageUnit
        self.amountFen = amountFen
        self.lateFeeFen = lateFeeFen
        self.issueDate = issueDate
        self.dueDate = dueDate
    }
}

/// A withdrawal of an earlier bill.
public struct FeedCancel: Sendable, Hashable {
    public var billID: String
    public var reason: String
}

/// What a complete, valid feed held.
public struct FeedSummary: Sendable, Hashable {
    public var header: FeedHeader
    public var bills: Int
    public var cancels: Int
    public var sumFen: Int64
}
