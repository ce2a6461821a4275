import Foundation
import Ledger

/// The reconciliation as text for a terminal, CSV, JSON, or a self-contained HTML page with
/// inline SVG charts (no scripts, nothing fetched).
extension Reconciliation {
    static func yuan(_ fen: Int64) -> String { Money(fen: fen).yuanString }

    public var text: String {
        var lines = ["reconciliation for \(date): \(breaks.isEmpty ? "no breaks" : "\(breaks.count) open break(s)")", ""]
        for b in billers {
            lines.append("\(b.biller)  feeds \(b.feeds.isEmpty ? "none" : b.feeds.joined(separator: ", "))  (\(b.feedBills) bills, control sum \(Self.yuan(b.feedCtrlSumFen)))")
            lines.append("  ingested \(b.ingested.count) / \(Self.yuan(b.ingested.fen))   matched \(b.matched.count)   unmatched \(b.unmatched.count) / \(Self.yuan(b.unmatched.fen))   rejected records \(b.rejectedRecords)")
            lines.append("  paid auto \(b.paidAuto.count) / \(Self.yuan(b.paidAuto.fen))   manual \(b.paidManual.count) / \(Self.yuan(b.paidManual.fen))   refunded \(b.refunded.count) / \(Self.yuan(b.refunded.fen))   cancelled \(b.cancelled.count)")
            let pending = b.pendingByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count) / \(Self.yuan($0.value.fen))" }
            lines.append("  pending \(pending.isEmpty ? "none" : pending.joined(separator: ", "))")
            lines.append("  net paid \(Self.yuan(b.paidNetFen))   report \(b.reportPaidFen.map { Self.yuan($0 - (b.reportRefundedFen ?? 0)) } ?? "none")   ledger \(Self.yuan(b.ledgerMovementFen))")
        }
        lines.append("")
        for s in sponsors {
            lines.append("sponsor \(s.sponsor): discounts \(Self.yuan(s.discountsFen))   budgets used \(Self.yuan(s.budgetUsedFen))   sponsor account \(Self.yuan(s.ledgerMovementFen))")
        }
        lines.append("points: issued \(points.issued), vested \(points.vested), expired \(points.expired), taken back \(points.reversed); wallets hold \(points.walletPointsTotal), liability \(-points.liabilityBalance)")
        for line in trialBalance {
            let show: (Int64) -> String = { line.asset == .cny ? Self.yuan($0) : String($0) }
            lines.append("trial balance \(line.asset.rawValue): debits \(show(line.debitsPosted))  credits \(show(line.creditsPosted))")
        }
        lines.append("ledger check: \(ledgerOk ? "ok" : "\(ledgerViolations.count) violation(s)")")
        lines.append("ledger head: \(ledgerHead)")
        lines.append("operator actions: " + (operatorActions.isEmpty ? "none" : operatorActions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        if !breaks.isEmpty {
            lines.append("")
            lines.append("breaks (category, subject, age in days, detail):")
            for b in breaks {
                lines.append("  \(b.category)  \(b.subject)  \(b.ageDays)d (since \(b.firstSeen))  \(b.detail)")
            }
        }
        return lines.joined(separator: "\n")
    }

    public var csv: String {
        func field(_ text: String) -> String {
            text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var rows = ["section,date,biller,metric,count,fen,detail", "ledger,\(date),,head,,,\(ledgerHead)"]
        for b in billers {
            let metrics: [(String, Reconciliation.Count)] = [
                ("ingested", b.ingested), ("matched", b.matched), ("paid_auto", b.paidAuto), ("paid_manual", b.paidManual),
                ("unmatched", b.unmatched), ("cancelled", b.cancelled), ("refunded", b.refunded),
            ] + b.pendingByReason.sorted { $0.key < $1.key }.map { ("pending_\($0.key.lowercased())", $0.value) }
            rows.append("biller,\(date),\(b.biller),feed_control,\(b.feedBills),\(b.feedCtrlSumFen),\(field(b.feeds.joined(separator: " ")))")
            for (name, count) in metrics { rows.append("biller,\(date),\(b.biller),\(name),\(count.count),\(count.fen),") }
            rows.append("biller,\(date),\(b.biller),rejected_records,\(b.rejectedRecords),,")
            rows.append("biller,\(date),\(b.biller),report_net,,\(b.reportPaidFen.map { String($0 - (b.reportRefundedFen ?? 0)) } ?? ""),")
            rows.append("biller,\(date),\(b.biller),ledger_movement,,\(b.ledgerMovementFen),")
        }
        for s in sponsors {
            rows.append("sponsor,\(date),\(s.sponsor),discounts,,\(s.discountsFen),")
            rows.append("sponsor,\(date),\(s.sponsor),ledger_movement,,\(s.ledgerMovementFen),")
        }
        for b in breaks {
            rows.append("break,\(date),,\(b.category),\(b.ageDays),,\(field(b.subject + ": " + b.detail))")
        }
        return rows.joined(separator: "\n") + "\n"
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Bars of paid, pending and unmatched per biller.
    var billerChart: String {
        let width = 640, rowHeight = 34, left = 110
        let maxFen = max(1, billers.map { max($0.paidAuto.fen + $0.paidManual.fen, $0.pendingByReason.values.reduce(0) { $0 + $1.fen }, $0.unmatched.fen) }.max() ?? 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(billers.count * rowHeight * 3 + 30)\" role=\"img\" aria-label=\"paid, pending and unmatched by biller\">"
        var y = 10
        for b in billers {
            let series: [(String, Int64, String)] = [("paid", b.paidAuto.fen + b.paidManual.fen, "#2e7d32"), ("pending", b.pendingByReason.values.reduce(0) { $0 + $1.fen }, "#f9a825"), ("unmatched", b.unmatched.fen, "#c62828")]
            for (name, fen, color) in series {
                let length = Int(Int64(width - left - 90) * fen / maxFen)
                svg += "<text x=\"0\" y=\"\(y + 14)\" font-size=\"12\">\(Self.escape(b.biller)) \(name)</text>"
                svg += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(max(1, length))\" height=\"18\" fill=\"\(color)\"/>"
                svg += "<text x=\"\(left + length + 6)\" y=\"\(y + 14)\" font-size=\"12\">\(Self.yuan(fen))</text>"
                y += rowHeight
            }
        }
        return svg + "</svg>"
    }

    /// The last 30 days of paid sums, as a line.
    var trendChart: String {
        let width = 640, height = 160
        let maxFen = max(1, trend.map(\.paidFen).max() ?? 1)
        let step = Double(width - 40) / Double(max(1, trend.count - 1))
        let points = trend.enumerated().map { index, day in
            "\(20 + Int(Double(index) * step)),\(height - 20 - Int(Int64(height - 40) * day.paidFen / maxFen))"
        }.joined(separator: " ")
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"paid per day, last 30 days\">"
            + "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"\(points)\"/>"
            + "<text x=\"20\" y=\"14\" font-size=\"12\">max \(Self.yuan(maxFen))</text>"
            + "<text x=\"20\" y=\"\(height - 4)\" font-size=\"12\">\(trend.first?.date ?? "")</text>"
            + "<text x=\"\(width - 90)\" y=\"\(height - 4)\" font-size=\"12\">\(trend.last?.date ?? "")</text></svg>"
    }

    public var html: String {
        var body = "<h1>qdwallet reconciliation \(Self.escape(date))</h1>"
        body += "<p class=\"\(breaks.isEmpty ? "ok" : "bad")\">\(breaks.isEmpty ? "No breaks." : "\(breaks.count) open break(s).") Ledger check: \(ledgerOk ? "ok" : "violations"). Ledger head: <code>\(ledgerHead)</code>.</p>"
        body += "<h2>Billers</h2><table><tr><th>biller</th><th>feed bills</th><th>control sum</th><th>ingested</th><th>paid (auto)</th><th>paid (manual)</th><th>pending</th><th>unmatched</th><th>refunded</th><th>report net</th><th>ledger</th></tr>"
        for b in billers {
            let pending = b.pendingByReason.values.reduce(Reconciliation.Count()) { Reconciliation.Count($0.count + $1.count, $0.fen + $1.fen) }
            body += "<tr><td>\(Self.escape(b.biller))</td><td>\(b.feedBills)</td><td>\(Self.yuan(b.feedCtrlSumFen))</td><td>\(b.ingested.count)</td><td>\(b.paidAuto.count) / \(Self.yuan(b.paidAuto.fen))</td><td>\(b.paidManual.count) / \(Self.yuan(b.paidManual.fen))</td><td>\(pending.count) / \(Self.yuan(pending.fen))</td><td>\(b.unmatched.count)</td><td>\(b.refunded.count) / \(Self.yuan(b.refunded.fen))</td><td>\(b.reportPaidFen.map { Self.yuan($0 - (b.reportRefundedFen ?? 0)) } ?? "-")</td><td>\(Self.yuan(b.ledgerMovementFen))</td></tr>"
        }
        body += "</table><h2>Paid, pending and unmatched</h2>" + billerChart + "<h2>Paid per day, last 30 days</h2>" + trendChart
        body += "<h2>Campaigns</h2><table><tr><th>sponsor</th><th>discounts</th><th>budgets used</th><th>sponsor account</th></tr>"
        for s in sponsors {
            body += "<tr><td>\(Self.escape(s.sponsor))</td><td>\(Self.yuan(s.discountsFen))</td><td>\(Self.yuan(s.budgetUsedFen))</td><td>\(Self.yuan(s.ledgerMovementFen))</td></tr>"
        }
        body += "</table><p>Points: issued \(points.issued), vested \(points.vested), expired \(points.expired), taken back \(points.reversed); wallets hold \(points.walletPointsTotal), liability \(-points.liabilityBalance).</p>"
        body += "<h2>Trial balance</h2><table><tr><th>asset</th><th>debits</th><th>credits</th></tr>"
        for line in trialBalance {
            body += "<tr><td>\(line.asset.rawValue)</td><td>\(line.debitsPosted)</td><td>\(line.creditsPosted)</td></tr>"
        }
        body += "</table><h2>Breaks</h2>"
        if breaks.isEmpty {
            body += "<p>None.</p>"
        } else {
            body += "<table><tr><th>category</th><th>subject</th><th>age (days)</th><th>since</th><th>detail</th></tr>"
            for b in breaks {
                body += "<tr><td>\(Self.escape(b.category))</td><td>\(Self.escape(b.subject))</td><td>\(b.ageDays)</td><td>\(b.firstSeen)</td><td>\(Self.escape(b.detail))</td></tr>"
            }
            body += "</table>"
        }
        return """
            <!DOCTYPE html>
            <html lang="zh-CN"><head><meta charset="utf-8"/><title>qdwallet reconciliation \(Self.escape(date))</title>
            <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.ok{color:#2e7d32}.bad{color:#c62828;font-weight:bold}</style>
            </head><body>\(body)</body></html>

            """
    }
}
