import AsyncHTTPClient
import Campaigns
import Feeds
import Foundation
import Logging
import Notify
import Testing
import Wallet

/// Withdrawals, bill accounts, bills, paying one by hand, receipts, the campaigns a scanned
/// code would get and the monthly summary, over HTTP on the run's engine.
extension WalletAPITests {
    @Test func aResidentWithdrawsToACardConfirmedAsAPayment() async throws {
        let world = try APIWorld()
        try await world.serve {
            let device = try await world.signIn("13800000040")
            let other = try await world.signIn("13800000041")
            try world.fund("13800000040", fen: 10_000)
            let cardID = try #require(try world.wallets.cards(phone: "13800000040").first?.id)
            let token = device.accessToken
            func available() throws -> Int64 { try world.wallets.balance(phone: "13800000040").availableFen }

            let body: [String: Any] = ["card_id": cardID, "amount": "30.00", "payment_password": "135790"]
            #expect(try await world.call(.POST, "/v1/withdrawals", json: body, token: token).problem == "idempotency_key_missing")
            #expect(try await world.call(.POST, "/v1/withdrawals", json: ["card_id": cardID, "amount": "30.00"], token: token, key: "w-0").problem == "confirmation_required")
            let wrong = try await world.call(.POST, "/v1/withdrawals", json: ["card_id": cardID, "amount": "30.00", "payment_password": "000000"], token: token, key: "w-1")
            #expect(wrong.status == 403)
            #expect(wrong.problem == "wrong_password")
            #expect(try available() == 10_000)

            // The same key with the right password: the wrong attempt kept nothing.
            let held = try await world.call(.POST, "/v1/withdrawals", json: body, token: token, key: "w-1")
            #expect(held.status == 201, "\(held.body)")
            let withdrawal = try held.json()
            #expect(withdrawal["status"] as? String == "pending")
            #expect(withdrawal["amount"] as? String == "30.00")
            #expect(try available() == 7_000)
            #expect(try world.balanceFen("13800000040") == 10_000)
            let again = try await world.call(.POST, "/v1/withdrawals", json: body, token: token, key: "w-1")
            #expect(again.headers["idempotent-replayed"] == "true")
            #expect(try again.json()["withdrawal_id"] as? Int == withdrawal["withdrawal_id"] as? Int)
            #expect(try available() == 7_000)
            #expect(try await world.call(.POST, "/v1/withdrawals", json: ["card_id": cardID, "amount": "31.00", "payment_password": "135790"], token: token, key: "w-1").problem == "idempotency_key_reused")

            // The card cannot be unbound while the money is on its way, nor used by another wallet.
            let unbind = try await world.call(.DELETE, "/v1/cards/\(cardID)", token: token)
            #expect(unbind.status == 409)
            #expect(unbind.problem == "card_has_pending_operation")
            let theirs = try await world.call(.POST, "/v1/withdrawals", json: ["card_id": cardID, "amount": "1.00", "payment_password": "135790"], token: other.accessToken, key: "w-2")
            #expect(theirs.status == 404)
            #expect(theirs.problem == "card_not_found")
            let over = try await world.call(.POST, "/v1/withdrawals", json: ["card_id": cardID, "amount": "70.01", "payment_password": "135790"], token: token, key: "w-3")
            #expect(over.status == 422)
            #expect(over.problem == "insufficient_funds")
            #expect(try available() == 7_000)

            // The bank pays it out: the hold is posted.
            let id = try #require(withdrawal["withdrawal_id"] as? Int)
            _ = try world.wallets.confirmWithdrawal(id: Int64(id))
            #expect(try world.balanceFen("13800000040") == 7_000)
            #expect(try await world.call(.DELETE, "/v1/cards/\(cardID)", token: token).status == 200)
        }
    }

    @Test func billAccountsBillsAndPayingOneByHand() async throws {
        let world = try APIWorld()
        try world.registerBillers()
        try world.useJobsCampaigns()
        try await world.serve {
            let device = try await world.signIn("13800000042")
            let other = try await world.signIn("13800000043")
            try world.fund("13800000042", fen: 100_000)
            let token = device.accessToken

            // Autopay pays without asking: linking a number with autopay on needs the payment
            // password (a stolen token must not set the wallet paying someone else's bills);
            // a refused link leaves nothing linked.
            let unconfirmed = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "300.00"], token: token)
            #expect(unconfirmed.status == 422)
            #expect(unconfirmed.problem == "confirmation_required")
            let wrong = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "payment_password": "000000"], token: token)
            #expect(wrong.status == 403)
            #expect(wrong.problem == "wrong_password")
            #expect(try await world.call(.GET, "/v1/bill-accounts", token: token).json()["accounts"].flatMap { $0 as? [Any] }?.count == 0)
            let linked = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "300.00", "payment_password": "135790"], token: token)
            #expect(linked.status == 201, "\(linked.body)")
            let account = try linked.json()
            #expect(account["autopay_limit"] as? String == "300.00")
            #expect(account["status"] as? String == "linked")
            // Lowering the per-bill limit or turning autopay off needs the token only; raising
            // the limit or turning autopay back on, the password again.
            let lowered = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "200.00"], token: token)
            #expect(try lowered.json()["autopay_limit"] as? String == "200.00")
            #expect(try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "200.01"], token: token).problem == "confirmation_required")
            #expect(try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": false], token: token).status == 201)
            #expect(try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "200.00"], token: token).problem == "confirmation_required")
            let restored = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": true, "autopay_limit": "300.00", "payment_password": "135790"], token: token)
            #expect(try restored.json()["autopay_limit"] as? String == "300.00")
            #expect(try restored.json()["autopay"] as? Bool == true)
            let taken = try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "1100234567", "autopay": false], token: other.accessToken)
            #expect(taken.status == 409)
            #expect(taken.problem == "account_already_linked")
            #expect(try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-NOPE", "customer_no": "1100234567", "autopay": false], token: token).problem == "unknown_biller")
            #expect(try await world.call(.POST, "/v1/bill-accounts", json: ["biller": "QD-WATER", "customer_no": "12", "autopay": false], token: token).problem == "invalid_customer_no")
            let accounts = try await world.call(.GET, "/v1/bill-accounts", token: token).json()
            #expect((accounts["accounts"] as? [Any])?.count == 1)
            #expect(accounts["autopay_daily_limit"] as? String == "3000.00")
            #expect(try await world.call(.GET, "/v1/bill-accounts", token: other.accessToken).json()["accounts"].flatMap { $0 as? [Any] }?.count == 0)
            // Lowering the daily autopay limit needs the token only; raising it, the password.
            let limit = try await world.call(.PUT, "/v1/wallet/autopay-limit", json: ["amount": "1000.00"], token: token)
            #expect(try limit.json()["autopay_daily_limit"] as? String == "1000.00")
            let raise = try await world.call(.PUT, "/v1/wallet/autopay-limit", json: ["amount": "2000.00"], token: token)
            #expect(raise.status == 422)
            #expect(raise.problem == "confirmation_required")
            #expect(try await world.call(.PUT, "/v1/wallet/autopay-limit", json: ["amount": "2000.00", "payment_password": "000000"], token: token).problem == "wrong_password")
            #expect(try await world.call(.GET, "/v1/bill-accounts", token: token).json()["autopay_daily_limit"] as? String == "1000.00")
            let raised = try await world.call(.PUT, "/v1/wallet/autopay-limit", json: ["amount": "2000.00", "payment_password": "135790"], token: token)
            #expect(try raised.json()["autopay_daily_limit"] as? String == "2000.00")
            #expect(try await world.call(.PUT, "/v1/wallet/autopay-limit", json: ["amount": "50000.01", "payment_password": "135790"], token: token).problem == "amount_over_request_limit")

            try world.stageBill(biller: "QD-WATER", billID: "W2611-000001", customer: "1100234567", fen: 4_520)
            try world.stageBill(biller: "QD-WATER", billID: "W2611-000002", customer: "1100234567", fen: 600_000)
            let bills = try #require(try await world.call(.GET, "/v1/bills", token: token).json()["bills"] as? [[String: Any]])
            #expect(Set(bills.compactMap { $0["reference"] as? String }) == ["QD-WATER:W2611-000001", "QD-WATER:W2611-000002"])
            #expect(bills.first { $0["bill_id"] as? String == "W2611-000001" }?["due"] as? String == "45.20")
            #expect(try await world.call(.GET, "/v1/bills", token: other.accessToken).json()["bills"].flatMap { $0 as? [Any] }?.count == 0)
            #expect(try await world.call(.GET, "/v1/bills?status=overdue", token: token).status == 400)

            // Another wallet cannot pay (or learn of) this wallet's bill: not even that a large one
            // exists (the second factor is asked only of the bill's own wallet).
            let theirs = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000001", "payment_password": "135790"], token: other.accessToken, key: "b-1")
            #expect(theirs.status == 404)
            #expect(theirs.problem == "bill_not_found")
            let theirsLarge = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000002", "payment_password": "135790"], token: other.accessToken, key: "b-5")
            #expect(theirsLarge.problem == "bill_not_found")
            // 6,000.00 is a large payment: the password alone is not enough.
            let large = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000002", "payment_password": "135790"], token: token, key: "b-2")
            #expect(large.status == 403)
            #expect(large.problem == "second_factor_required")
            #expect(try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER-W2611", "payment_password": "135790"], token: token, key: "b-3").problem == "invalid_bill_reference")

            // The first bill a wallet pays for a biller gets first-bill-welcome's 5.00 off.
            let paid = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000001", "payment_password": "135790"], token: token, key: "b-1")
            #expect(paid.status == 201, "\(paid.body)")
            let receipt = try paid.json()
            let transaction = try #require(receipt["transaction_id"] as? Int)
            #expect(receipt["discount"] as? String == "5.00")
            #expect(try world.balanceFen("13800000042") == 100_000 - 4_020)
            let retried = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000001", "payment_password": "135790"], token: token, key: "b-1")
            #expect(retried.headers["idempotent-replayed"] == "true")
            // A new key for a bill paid already answers with that payment, paying nothing.
            let fresh = try await world.call(.POST, "/v1/bill-payments", json: ["bill": "QD-WATER:W2611-000001", "payment_password": "135790"], token: token, key: "b-4")
            #expect(try fresh.json()["transaction_id"] as? Int == transaction)
            #expect(try world.balanceFen("13800000042") == 100_000 - 4_020)
            #expect(try await world.call(.GET, "/v1/bills?status=paid", token: token).json()["bills"].flatMap { $0 as? [Any] }?.count == 1)

            // The receipt, with what each campaign did; another wallet's token finds nothing.
            let shown = try await world.call(.GET, "/v1/payments/\(transaction)", token: token)
            #expect(shown.status == 200, "\(shown.body)")
            let explained = try shown.json()
            #expect(explained["amount"] as? String == "-40.20")
            let outcomes = try #require(explained["campaigns"] as? [[String: Any]])
            let welcome = try #require(outcomes.first { $0["campaign_id"] as? String == "first-bill-welcome" })
            #expect(welcome["applied"] as? Bool == true)
            #expect(welcome["discount"] as? String == "5.00")
            #expect(!shown.body.contains("budget"))
            #expect(try await world.call(.GET, "/v1/payments/\(transaction)", token: other.accessToken).problem == "payment_not_found")
            #expect(try await world.call(.GET, "/v1/payments/999999", token: token).status == 404)

            let summary = try await world.call(.GET, "/v1/wallet/summary?month=2026-11", token: token).json()
            #expect(summary["spent"] as? String == "40.20")
            #expect(try await world.call(.GET, "/v1/wallet/summary?month=2026-13", token: token).status == 400)
            #expect(try await world.call(.GET, "/v1/wallet/summary?month=2026-10", token: token).json()["spent"] as? String == "0.00")

            let id = try #require(account["id"] as? Int)
            #expect(try await world.call(.DELETE, "/v1/bill-accounts/\(id)", token: other.accessToken).problem == "account_not_linked")
            let unlinked = try await world.call(.DELETE, "/v1/bill-accounts/\(id)", token: token)
            #expect(try unlinked.json()["status"] as? String == "unlinked")
            #expect(try await world.call(.GET, "/v1/bill-accounts", token: token).json()["accounts"].flatMap { $0 as? [Any] }?.count == 0)
        }
    }

    /// 2.00 off a QR payment of 10.00 or more at dining merchants, funded by its sponsor.
    static let diningCampaign = """
        id = "qr-dining"
        version = 1
        sponsor = "QD-COMMERCE-BUREAU"
        [window]
        start = 2026-11-01T00:00:00+08:00
        end = 2026-12-31T23:59:59+08:00
        [eligibility]
        payment_kinds = ["qr_payment"]
        categories = ["dining"]
        [budget]
        total_fen = 100_000
        on_exhaustion = "partial"
        [stacking]
        group = "qr"
        mode = "exclusive"
        priority = 1
        [[benefit]]
        kind = "threshold_off"
        tiers = [ { min_fen = 1_000, off_fen = 200 } ]
        """

    @Test func aScannedCodeShowsTheCampaignsThatWouldApplyAndTheReceiptWhatDid() async throws {
        let world = try APIWorld(qrCampaigns: [try Campaign.parse(Self.diningCampaign, file: "qr-dining.toml")])
        _ = try world.wallets.registerMerchant(id: "M-TEA", name: "崂山茶馆", category: "dining")
        try await world.serve {
            let device = try await world.signIn("13800000044")
            try world.fund("13800000044", fen: 10_000)
            let token = device.accessToken
            let open = try world.wallets.merchantQR(id: "M-TEA", amountFen: nil)
            let fixed = try world.wallets.merchantQR(id: "M-TEA", amountFen: 2_000)

            // Without an amount: the merchant only.
            let bare = try await world.call(.POST, "/v1/qr/decode", json: ["payload": open], token: token).json()
            #expect(bare["merchant_name"] as? String == "崂山茶馆")
            #expect(bare["campaigns"] == nil && bare["to_pay"] == nil)
            // Under the threshold: nothing applies.
            let small = try await world.call(.POST, "/v1/qr/decode", json: ["payload": open, "amount": "9.99"], token: token).json()
            #expect((small["campaigns"] as? [Any])?.isEmpty == true)
            #expect(small["to_pay"] as? String == "9.99")
            // A fixed amount of 20.00: 2.00 off.
            let shown = try await world.call(.POST, "/v1/qr/decode", json: ["payload": fixed], token: token).json()
            let campaigns = try #require(shown["campaigns"] as? [[String: Any]])
            #expect(campaigns.count == 1)
            #expect(campaigns.first?["campaign_id"] as? String == "qr-dining")
            #expect(campaigns.first?["discount"] as? String == "2.00")
            #expect(shown["to_pay"] as? String == "18.00")
            #expect(try await world.call(.POST, "/v1/qr/decode", json: ["payload": fixed, "amount": "21.00"], token: token).problem == "qr_amount_mismatch")
            // Showing held nothing: the payment gets what was shown, and the receipt says why.
            let paid = try await world.call(.POST, "/v1/payments/qr", json: ["payload": fixed, "payment_password": "135790"], token: token, key: "q-1")
            #expect(paid.status == 201, "\(paid.body)")
            #expect(try paid.json()["discount"] as? String == "2.00")
            #expect(try world.balanceFen("13800000044") == 10_000 - 1_800)
            let transaction = try #require(try paid.json()["transaction_id"] as? Int)
            let receipt = try await world.call(.GET, "/v1/payments/\(transaction)", token: token).json()
            let outcome = try #require((receipt["campaigns"] as? [[String: Any]])?.first { $0["campaign_id"] as? String == "qr-dining" })
            #expect(outcome["applied"] as? Bool == true)
            #expect(outcome["discount"] as? String == "2.00")
            #expect(receipt["amount"] as? String == "-18.00")
        }
    }

    /// For a day after the payment password is reset (as an operator does for a resident who
    /// forgot it), every payment needs both factors: whoever reset it may not be the owner.
    @Test func aPaymentInTheDayAfterAPasswordResetNeedsBothFactors() async throws {
        let world = try APIWorld()
        try await world.serve {
            let device = try await world.signIn("13800000045")
            _ = try await world.signIn("13800000046")
            try world.fund("13800000045", fen: 10_000)
            let small = ["to_phone": "13800000046", "amount": "1.00"]
            // Set once at opening: one factor is enough.
            #expect(try await world.call(.POST, "/v1/transfers", json: small.merging(["payment_password": "135790"]) { $1 }, token: device.accessToken, key: "r-1").status == 201)
            try world.wallets.setPassword(phone: "13800000045", password: "246802")
            let password = try await world.call(.POST, "/v1/transfers", json: small.merging(["payment_password": "246802"]) { $1 }, token: device.accessToken, key: "r-2")
            #expect(password.status == 403)
            #expect(password.problem == "second_factor_required")
            let signature = try await world.signature(device, operation: "transfer", parameters: small)
            #expect(try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000046", "amount": "1.00", "device_signature": signature], token: device.accessToken, key: "r-3").problem == "second_factor_required")
            let both = try await world.signature(device, operation: "transfer", parameters: small)
            #expect(try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000046", "amount": "1.00", "payment_password": "246802", "device_signature": both], token: device.accessToken, key: "r-4").status == 201)
            // A day later one factor is enough again.
            world.clock.advance(micros: 86_400_000_000)
            let token = try await world.refreshedToken(device)
            #expect(try await world.call(.POST, "/v1/transfers", json: small.merging(["payment_password": "246802"]) { $1 }, token: token, key: "r-5").status == 201)
            #expect(try world.balanceFen("13800000046") == 300)
        }
    }

    /// One-time codes and security alerts reach the notify sink as soon as they are queued
    /// (the server delivers urgent messages itself), each once, the code's payload emptied.
    @Test func codesAndAlertsAreDeliveredAtOnce() async throws {
        let world = try APIWorld()
        let sink = world.directory.appendingPathComponent("notifications.jsonl").path
        let delivery = OutboxDelivery(config: NotifyConfig(sink: .file(path: sink)), secret: nil, fetcher: FeedFetcher(limits: FetchLimits(), sleepMillis: { _ in }),
                                      database: world.store.database, clock: world.clock, logger: Logger(label: "test"))
        world.deliverUrgent = { try delivery.deliverUrgent(owner: -7) }
        func lines() throws -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: sink, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        func waitFor(_ kind: String, count: Int) async throws -> [[String: Any]] {
            for _ in 0..<200 {
                let found = try lines().filter { $0["kind"] as? String == kind }
                if found.count >= count { return found }
                try await Task.sleep(for: .milliseconds(25))
            }
            Issue.record("no \(kind) message reached the sink")
            return []
        }
        try await world.serve {
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000047"]).status == 202)
            let codes = try await waitFor("sms_code", count: 1)
            let payload = try #require(codes.first?["payload"] as? [String: Any])
            #expect(payload["phone"] as? String == "13800000047")
            let code = try #require(payload["code"] as? String)
            #expect(code.count == 6)
            // Delivered (recorded just after the sink has it): the database keeps no copy of the code.
            var kept = try world.smsCode("13800000047")
            for _ in 0..<100 where kept != nil {
                try await Task.sleep(for: .milliseconds(20))
                kept = try world.smsCode("13800000047")
            }
            #expect(kept == nil)
            let key = APIWorld.deviceKey()
            let registered = try await world.call(.POST, "/v1/devices", json: ["phone": "13800000047", "code": code, "public_key": key, "label": "phone", "name": "李雷", "payment_password": "135790"])
            #expect(registered.status == 201, "\(registered.body)")
            // A second device of the wallet alerts it at once.
            world.clock.advance(micros: 61_000_000)
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000047"]).status == 202)
            let second = try #require(try await waitFor("sms_code", count: 2).last?["payload"] as? [String: Any])
            let again = try await world.call(.POST, "/v1/devices", json: ["phone": "13800000047", "code": try #require(second["code"] as? String), "public_key": APIWorld.deviceKey(),
                                                                           "label": "tablet", "payment_password": "135790"])
            #expect(again.status == 201, "\(again.body)")
            let alerts = try await waitFor("security_alert", count: 1)
            #expect(alerts.first.flatMap { ($0["payload"] as? [String: Any])?["event"] as? String } == "new_device")
            // Each message once, however many looks the server took.
            try await Task.sleep(for: .milliseconds(200))
            let ids = try lines().compactMap { $0["message_id"] as? String }
            #expect(ids.count == 3 && Set(ids).count == 3)
        }
    }
}

