import ArgumentParser
import Campaigns
import Foundation
import GRDB
import Ledger

/// `qdwallet campaign list/show/explain`
struct CampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign", abstract: "Campaigns: budgets, caps, and why a payment got what it got.",
        subcommands: [List.self, Show.self, Explain.self])

    struct Line: Encodable {
        var id: String
        var version: Int
        var title: String
        var sponsor: String
        var group: String
        var exclusive: Bool
        var priority: Int
        var budgetTotalFen: Int64?
        var budgetUsedFen: Int64
        var budgetLeftFen: Int64?
        var payments: Int
        var pointsIssued: Int64
    }

    static func lines(_ global: GlobalOptions, _ jobs: JobsOptions) throws -> [Line] {
        let store = try AppDatabase.openStore(path: global.databasePath)
        let campaigns = try CampaignSetup.load(jobs, store: store)
        return try store.database.read { db in
            try campaigns.map { campaign in
                let used = try CampaignStore(db).budgetUsedFen(campaignID: campaign.id)
                let use = try CampaignStore(db).standingUse(campaignID: campaign.id)
                return Line(id: campaign.id, version: campaign.version, title: campaign.title, sponsor: campaign.sponsor, group: campaign.group, exclusive: campaign.exclusive,
                            priority: campaign.priority, budgetTotalFen: campaign.budgetTotalFen, budgetUsedFen: used, budgetLeftFen: campaign.budgetTotalFen.map { $0 - used },
                            payments: use.payments, pointsIssued: use.points)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every campaign with its budget used and left.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var jobs: JobsOptions

        func run() throws {
            let lines = try CampaignCommand.lines(global, jobs)
            Output(json: global.json).emit(["campaigns": lines]) {
                lines.map { line in
                    let budget = line.budgetTotalFen.map { "budget \(Money(fen: line.budgetUsedFen).yuanString) used of \(Money(fen: $0).yuanString)" } ?? "no budget"
                    return "\(line.id) v\(line.version)  \(line.title)  sponsor \(line.sponsor)  \(budget)  payments \(line.payments)  points \(line.pointsIssued)"
                }.joined(separator: "\n")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One campaign: its definition, budget and cap use.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var jobs: JobsOptions
        @Argument var id: String

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath)
            let campaigns = try CampaignSetup.load(jobs, store: store)
            guard let campaign = campaigns.first(where: { $0.id == id }), let line = try CampaignCommand.lines(global, jobs).first(where: { $0.id == id }) else {
                throw CLIFailure(.refused, code: "unknown_campaign", "no campaign \"\(id.prefix(64))\" in \(jobs.path)/campaigns")
            }
            let capUse = try store.database.read { db in
                try CampaignStore(db).usesByMonth(campaignID: id).map { "\($0.month): \($0.uses) uses, \(Money(fen: $0.discountFen).yuanString)" }
            }
            struct Document: Encodable { var campaign: Campaign; var usage: Line; var usesByMonth: [String] }
            Output(json: global.json).emit(Document(campaign: campaign, usage: line, usesByMonth: capUse)) {
                var text = ["\(campaign.id) v\(campaign.version): \(campaign.title)", "  sponsor \(campaign.sponsor), group \(campaign.group) (\(campaign.exclusive ? "exclusive" : "stackable"), priority \(campaign.priority))"]
                text.append("  budget: " + (line.budgetTotalFen.map { "\(Money(fen: line.budgetUsedFen).yuanString) used, \(Money(fen: $0 - line.budgetUsedFen).yuanString) left" } ?? "none"))
                text.append("  caps: " + (campaign.caps.isEmpty ? "none" : campaign.caps.map { "\($0.scope.rawValue)/\($0.period.rawValue)" + ($0.maxCount.map { " \($0) uses" } ?? "") + ($0.maxFen.map { " \(Money(fen: $0).yuanString)" } ?? "") }.joined(separator: "; ")))
                text.append(contentsOf: capUse.map { "  \($0)" })
                return text.joined(separator: "\n")
            }
        }
    }

    struct Explain: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(abstract: "For one payment, each campaign: applied or not, and why (condition, cap, budget before and after, rounding).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The payment's transaction id.") var payment: Int64

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
            guard let row = try store.database.read({ db in try CampaignStore(db).explanation(transactionID: payment) }) else {
                throw CLIFailure(.refused, code: "no_explanation", "no campaign evaluation was recorded for transaction \(payment)")
            }
            let context = try JSONDecoder().decode(JSONValue.self, from: Data(row.context.utf8))
            let explanations = try JSONDecoder().decode(JSONValue.self, from: Data(row.explanation.utf8))
            struct Document: Encodable { var paymentKey: String; var transactionId: Int64; var context: JSONValue; var campaigns: JSONValue }
            let document = Document(paymentKey: row.paymentKey, transactionId: payment, context: context, campaigns: explanations)
            Output(json: global.json).emit(document) {
                var text = ["payment \(document.paymentKey) (transaction \(payment))"]
                if case .array(let items) = explanations {
                    for item in items {
                        guard case .object(let fields) = item else { continue }
                        func value(_ key: String) -> String {
                            switch fields[key] {
                            case .string(let s): s
                            case .number(let n): String(n)
                            case .bool(let b): b ? "yes" : "no"
                            case .array(let a): a.compactMap { if case .string(let s) = $0 { s } else { nil } }.joined(separator: "; ")
                            default: "-"
                            }
                        }
                        text.append("  \(value("campaign_id")) v\(value("version")): \(value("reason"))  discount \(value("discount_fen")) fen  points \(value("points"))  budget \(value("budget_before_fen")) -> \(value("budget_after_fen"))  caps \(value("caps"))  rounding \(value("rounding"))")
                    }
                }
                return text.joined(separator: "\n")
            }
        }
    }
}
