import AppAccess
import AsyncHTTPClient
import Foundation
import Ledger
import NIOCore
import NIOHTTP1
import QDWalletServer
import Synchronization
import Testing
import Wallet

/// The wallet app's flows end to end, over HTTP on a loopback port, on the run's engine:
/// sign-in by SMS code, devices and tokens, the wallet, QR payments and transfers with
/// idempotency keys, and who may do what.
@Suite struct WalletAPITests {
    @Test func aNewNumberSignsInOpensItsWalletAndReadsIt() async throws {
        let world = try APIWorld()
        try await world.serve {
            let sent = try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000001"])
            #expect(sent.status == 202)
            #expect(try sent.json()["expires_in"] as? Int == 300)
            // The code is stored as an HMAC only; the outbox carries it to the SMS sink.
            let code = try #require(try world.smsCode("13800000001"))
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            let stored = try world.store.database.read { db in try db.all("SELECT code_mac FROM app_sms_codes", []) { try $0.bytes(0) } }
            #expect(stored.count == 1 && stored[0].count == 32 && stored[0] != Array(code.utf8))

            let reply = try await world.call(.POST, "/v1/devices", json: ["phone": "13800000001", "code": code, "public_key": APIWorld.deviceKey(), "label": "华为 Mate", "name": "李雷", "payment_password": "135790"])
            #expect(reply.status == 201)
            let session = try reply.json()
            #expect(session["wallet_opened"] as? Bool == true)
            #expect(session["token_type"] as? String == "Bearer")
            #expect(session["expires_in"] as? Int == 600)
            let token = try #require(session["access_token"] as? String)

            let wallet = try await world.call(.GET, "/v1/wallet", token: token)
            #expect(wallet.status == 200)
            let body = try wallet.json()
            #expect(body["balance"] as? String == "0.00")
            #expect(body["points"] as? Int == 0)
            #expect(body["phone"] as? String == "138****0001")
            #expect(body["kyc_class"] as? Int == 1)
            // The password given at registration is the wallet's payment password.
            #expect(try world.wallets.checkPasswordForPayment(phone: "13800000001", password: "135790"))

            // A code opens one session, once.
            let again = try await world.call(.POST, "/v1/devices", json: ["phone": "13800000001", "code": code, "public_key": APIWorld.deviceKey(), "label": "x", "payment_password": "135790"])
            #expect(again.status == 422)
            #expect(again.problem == "code_invalid")
        }
    }

    @Test func codesAreThrottledBoundedAndExpire() async throws {
        let world = try APIWorld()
        try await world.serve {
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000002"]).status == 202)
            let soon = try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000002"])
            #expect(soon.status == 429)
            #expect(soon.problem == "code_throttled")
            #expect(soon.headers["retry-after"] == "60")
            world.clock.advance(micros: 20_000_000)
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000002"]).headers["retry-after"] == "40")

            // Five wrong tries, then even the right code is refused.
            world.clock.advance(micros: 41_000_000)
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000002"]).status == 202)
            let code = try #require(try world.smsCode("13800000002"))
            let wrong = code == "000000" ? "111111" : "000000"
            func register(_ code: String) async throws -> APIWorld.Reply {
                try await world.call(.POST, "/v1/devices", json: ["phone": "13800000002", "code": code, "public_key": APIWorld.deviceKey(), "label": "p", "name": "韩梅梅", "payment_password": "246810"])
            }
            for _ in 0..<5 { #expect(try await register(wrong).problem == "code_invalid") }
            #expect(try await register(code).problem == "code_attempts_exhausted")

            // A code lasts five minutes.
            world.clock.advance(micros: 61_000_000)
            #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000002"]).status == 202)
            let late = try #require(try world.smsCode("13800000002"))
            world.clock.advance(micros: 300_000_000)
            #expect(try await register(late).problem == "code_expired")
            // No wallet was opened by any of it.
            #expect(throws: WalletRefusal.walletNotFound) { try world.wallets.wallet(phone: "13800000002") }
            // A malformed number is refused before anything is sent.
            let bad = try await world.call(.POST, "/v1/sms-codes", json: ["phone": "2380000000"])
            #expect(bad.status == 422)
            #expect(bad.problem == "invalid_phone")
        }
    }

    @Test func aNewDeviceNeedsThePaymentPasswordAndAlertsTheOthers() async throws {
        let world = try APIWorld()
        try await world.serve {
            let first = try await world.signIn("13800000003")
            func second(_ password: String?) async throws -> APIWorld.Reply {
                #expect(try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000003"]).status == 202)
                let code = try #require(try world.smsCode("13800000003"))
                world.clock.advance(micros: 61_000_000)
                var body: [String: Any] = ["phone": "13800000003", "code": code, "public_key": APIWorld.deviceKey(), "label": "iPad"]
                if let password { body["payment_password"] = password }
                return try await world.call(.POST, "/v1/devices", json: body)
            }
            #expect(try await second(nil).problem == "payment_password_required")
            let wrong = try await second("000000")
            #expect(wrong.status == 403)
            #expect(wrong.problem == "wrong_password")
            #expect(try world.wallets.wallet(phone: "13800000003").failedPasswordCount == 1)
            #expect(try world.alerts(walletID: first.walletID).isEmpty)
            let right = try await second("135790")
            #expect(right.status == 201)
            #expect(try right.json()["wallet_opened"] as? Bool == false)
            #expect(try world.alerts(walletID: first.walletID) == ["new_device"])

            let devices = try await world.call(.GET, "/v1/devices", token: first.accessToken)
            let listed = try #require(try devices.json()["devices"] as? [[String: Any]])
            #expect(listed.count == 2)
            #expect(listed.filter { $0["current"] as? Bool == true }.count == 1)
        }
    }

    @Test func tokensExpireRotateAndAReusedRefreshTokenSignsTheDeviceOut() async throws {
        let world = try APIWorld()
        try await world.serve {
            let device = try await world.signIn("13800000004")
            // Altered: one character of the signature changed.
            var altered = Array(device.accessToken)
            altered[altered.count - 2] = altered[altered.count - 2] == "A" ? "B" : "A"
            let forged = try await world.call(.GET, "/v1/wallet", token: String(altered))
            #expect(forged.status == 401)
            #expect(forged.problem == "token_invalid")
            #expect(forged.headers["www-authenticate"] == "Bearer")
            let none = try await world.call(.GET, "/v1/wallet")
            #expect(none.status == 401)
            #expect(none.problem == "token_missing")

            world.clock.advance(micros: 600_000_000)
            #expect(try await world.call(.GET, "/v1/wallet", token: device.accessToken).problem == "token_expired")
            let renewed = try await world.call(.POST, "/v1/tokens", json: ["refresh_token": device.refreshToken])
            #expect(renewed.status == 200)
            let session = try renewed.json()
            let token = try #require(session["access_token"] as? String)
            #expect(try #require(session["refresh_token"] as? String) != device.refreshToken)
            #expect(try await world.call(.GET, "/v1/wallet", token: token).status == 200)

            // The old refresh token again: it was copied. The device is signed out, the wallet alerted.
            let reused = try await world.call(.POST, "/v1/tokens", json: ["refresh_token": device.refreshToken])
            #expect(reused.status == 401)
            #expect(reused.problem == "refresh_token_reused")
            #expect(try await world.call(.GET, "/v1/wallet", token: token).problem == "device_revoked")
            #expect(try world.alerts(walletID: device.walletID).contains("device_signed_out"))
            let unknown = try await world.call(.POST, "/v1/tokens", json: ["refresh_token": "rt1.nothing"])
            #expect(unknown.problem == "refresh_token_invalid")
        }
    }

    @Test func bodiesAreCheckedBeforeAnythingHappens() async throws {
        let world = try APIWorld()
        try await world.serve {
            let typo = try await world.call(.POST, "/v1/sms-codes", json: ["phone": "13800000005", "phnoe": "x"])
            #expect(typo.status == 400)
            #expect(typo.problem == "invalid_body")
            let missing = try await world.call(.POST, "/v1/sms-codes", json: [:])
            #expect(missing.status == 400)
            #expect(try missing.json()["detail"] as? String == "The member \"phone\" is required.")
            let number = try await world.call(.POST, "/v1/sms-codes", json: ["phone": 13800000005])
            #expect(number.status == 400)
            // An optional member is left out, not null: null is no value the document allows.
            let null = try await world.call(.POST, "/v1/devices", json: ["phone": "13800000005", "code": "123456", "public_key": APIWorld.deviceKey(), "label": "phone", "name": NSNull()])
            #expect(null.status == 400)
            #expect(try null.json()["detail"] as? String == "The member \"name\" is null: leave an optional member out instead.")
            let text = try await world.call(.POST, "/v1/sms-codes", headers: [("Content-Type", "text/plain")])
            #expect(text.status == 415)
            var large = HTTPClientRequest(url: world.base + "/v1/sms-codes")
            large.method = .POST
            large.headers.add(name: "Content-Type", value: "application/json")
            large.body = .bytes(ByteBuffer(string: "{\"phone\":\"" + String(repeating: "1", count: 20_000) + "\"}"))
            #expect(try await HTTPClient.shared.execute(large, timeout: .seconds(10)).status.code == 413)
            #expect(try world.smsCode("13800000005") == nil)
        }
    }

    /// The draft "The Idempotency-Key HTTP Header Field" (section 2: the header; 2.7: missing
    /// key 400, a key reused with another payload 422, a key in flight 409) and Stripe's
    /// replay of the first answer.
    @Test func aQRPaymentIsIdempotentByItsKey() async throws {
        let world = try APIWorld()
        _ = try world.wallets.registerMerchant(id: "M-TEA", name: "崂山茶馆", category: "dining")
        let qr = try world.wallets.merchantQR(id: "M-TEA", amountFen: 1_250)
        try await world.serve {
            let device = try await world.signIn("13800000006")
            try world.fund("13800000006", fen: 10_000)
            let decoded = try await world.call(.POST, "/v1/qr/decode", json: ["payload": qr], token: device.accessToken)
            #expect(decoded.status == 200)
            #expect(try decoded.json()["merchant_name"] as? String == "崂山茶馆")
            #expect(try decoded.json()["amount"] as? String == "12.50")

            let body: [String: Any] = ["payload": qr, "payment_password": "135790"]
            let keyless = try await world.call(.POST, "/v1/payments/qr", json: body, token: device.accessToken)
            #expect(keyless.status == 400)
            #expect(keyless.problem == "idempotency_key_missing")

            let paid = try await world.call(.POST, "/v1/payments/qr", json: body, token: device.accessToken, key: "pay-1")
            #expect(paid.status == 201)
            #expect(try paid.json()["amount"] as? String == "12.50")
            #expect(paid.headers["idempotent-replayed"] == nil)
            #expect(try world.balanceFen("13800000006") == 8_750)

            let retry = try await world.call(.POST, "/v1/payments/qr", json: body, token: device.accessToken, key: "pay-1")
            #expect(retry.status == 201)
            #expect(retry.body == paid.body)
            #expect(retry.headers["idempotent-replayed"] == "true")
            #expect(try world.balanceFen("13800000006") == 8_750)

            let other = try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "amount": "12.50", "payment_password": "135790"], token: device.accessToken, key: "pay-1")
            #expect(other.status == 422)
            #expect(other.problem == "idempotency_key_reused")

            // A wrong password keeps nothing: the same key with the right one pays, once.
            let wrong = try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "payment_password": "000000"], token: device.accessToken, key: "pay-2")
            #expect(wrong.status == 403)
            #expect(wrong.problem == "wrong_password")
            #expect(try world.balanceFen("13800000006") == 8_750)
            #expect(try await world.call(.POST, "/v1/payments/qr", json: body, token: device.accessToken, key: "pay-2").status == 201)
            #expect(try world.balanceFen("13800000006") == 7_500)

            // A refusal is kept like a receipt: the retry gets it again, and no money moves.
            let big = try world.wallets.merchantQR(id: "M-TEA", amountFen: 100_000)
            let short = try await world.call(.POST, "/v1/payments/qr", json: ["payload": big, "payment_password": "135790"], token: device.accessToken, key: "pay-3")
            #expect(short.status == 422)
            #expect(short.problem == "insufficient_funds")
            let shortAgain = try await world.call(.POST, "/v1/payments/qr", json: ["payload": big, "payment_password": "135790"], token: device.accessToken, key: "pay-3")
            #expect(shortAgain.body == short.body)
            #expect(shortAgain.headers["idempotent-replayed"] == "true")
            #expect(try world.balanceFen("13800000006") == 7_500)

            let history = try await world.call(.GET, "/v1/wallet/history?kind=qr_payment", token: device.accessToken)
            let lines = try #require(try history.json()["movements"] as? [[String: Any]])
            #expect(lines.map { $0["amount"] as? String } == ["-12.50", "-12.50"])
            #expect(try await world.call(.GET, "/v1/wallet/history?month=2026-13", token: device.accessToken).status == 400)
        }
    }

    /// Two wallets' keys never collide, and a token moves only its own wallet's money.
    @Test func aTransferMovesOnlyTheTokensWallet() async throws {
        let world = try APIWorld()
        try await world.serve {
            let alice = try await world.signIn("13800000007")
            let bob = try await world.signIn("13800000008", name: "韩梅梅", password: "246810")
            try world.fund("13800000007", fen: 5_000)
            let sent = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000008", "amount": "20.00", "payment_password": "135790"], token: alice.accessToken, key: "same-key")
            #expect(sent.status == 201)
            #expect(try world.balanceFen("13800000007") == 3_000)
            #expect(try world.balanceFen("13800000008") == 2_000)
            // Bob, with the same key and his own password: his own request, refused for his
            // own balance (his 20.00 does not cover 30.00), not a replay of Alice's.
            let back = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000007", "amount": "30.00", "payment_password": "246810"], token: bob.accessToken, key: "same-key")
            #expect(back.problem == "insufficient_funds")
            #expect(back.headers["idempotent-replayed"] == nil)
            // Bob's token with Alice's password moves nothing of Alice's.
            let stolen = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000007", "amount": "1.00", "payment_password": "135790"], token: bob.accessToken, key: "k2")
            #expect(stolen.problem == "wrong_password")
            #expect(try world.balanceFen("13800000007") == 3_000)
            // Each sees only its own wallet and devices.
            #expect(try await world.call(.GET, "/v1/wallet", token: bob.accessToken).json()["balance"] as? String == "20.00")
            let removal = try await world.call(.DELETE, "/v1/devices/\(alice.deviceID)", token: bob.accessToken)
            #expect(removal.status == 404)
            #expect(try await world.call(.GET, "/v1/wallet", token: alice.accessToken).status == 200)
            // Removing one's own device signs it out at once.
            #expect(try await world.call(.DELETE, "/v1/devices/\(alice.deviceID)", token: alice.accessToken).status == 204)
            #expect(try await world.call(.GET, "/v1/wallet", token: alice.accessToken).problem == "device_revoked")
        }
    }

    /// Every operation the document marks as needing a token refuses a request without one,
    /// and one with a token of a device that was removed.
    @Test func everyProtectedOperationRefusesWithoutAValidToken() async throws {
        let world = try APIWorld()
        let document = try #require(try JSONSerialization.jsonObject(with: Data(ServerTests.document.utf8)) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var protected: [(HTTPMethod, String)] = []
        for (path, item) in paths {
            for (method, operation) in item {
                guard let operation = operation as? [String: Any], operation["security"] != nil else { continue }
                protected.append((HTTPMethod(rawValue: method.uppercased()), path.replacingOccurrences(of: #"\{[a-z_]+\}"#, with: "1", options: .regularExpression)))
            }
        }
        #expect(protected.count >= 7)
        try await world.serve {
            let device = try await world.signIn("13800000009")
            #expect(try await world.call(.DELETE, "/v1/devices/\(device.deviceID)", token: device.accessToken).status == 204)
            for (method, path) in protected {
                let json: [String: Any]? = method == .POST ? [:] : nil
                let bare = try await world.call(method, path, json: json, key: "k")
                #expect(bare.status == 401, "\(method) \(path)")
                #expect(bare.problem == "token_missing", "\(method) \(path)")
                let revoked = try await world.call(method, path, json: json, token: device.accessToken, key: "k")
                #expect(revoked.problem == "device_revoked", "\(method) \(path)")
            }
        }
    }

    /// Many clients pay from one wallet at once: every 201 took its amount once, the balance
    /// never went below zero, and the same key sent at once by several clients paid once.
    @Test func racingPaymentsFromOneWallet() async throws {
        let world = try APIWorld()
        _ = try world.wallets.registerMerchant(id: "M-BUN", name: "包子铺", category: "dining")
        let qr = try world.wallets.merchantQR(id: "M-BUN", amountFen: 700)
        try await world.serve {
            let device = try await world.signIn("13800000010")
            try world.fund("13800000010", fen: 10_000)
            let token = device.accessToken
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "payment_password": "135790"], token: token, key: "race-\(index)").status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            let paid = statuses.filter { $0 == 201 }.count
            #expect(paid == 14)
            #expect(statuses.filter { $0 == 422 }.count == 6)
            #expect(try world.balanceFen("13800000010") == 10_000 - Int64(paid) * 700)

            let left = try world.balanceFen("13800000010")
            #expect(left == 200)
            try world.topUp("13800000010", fen: 5_000)
            let same = try await withThrowingTaskGroup(of: APIWorld.Reply.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "payment_password": "135790"], token: token, key: "once") }
                }
                return try await group.reduce(into: [APIWorld.Reply]()) { $0.append($1) }
            }
            // One paid; the others got its receipt again or were told it was in flight.
            #expect(same.allSatisfy { $0.status == 201 || ($0.status == 409 && $0.problem == "request_in_flight") }, "\(same.map(\.status))")
            let receipts = Set(same.filter { $0.status == 201 }.map(\.body))
            #expect(receipts.count == 1)
            #expect(try world.balanceFen("13800000010") == 5_200 - 700)
        }
    }

    /// IFAA and FIDO: the phone's key, unlocked by fingerprint or face, signs a one-time
    /// server challenge bound to this payment (ECDSA P-256, FIPS 186-4; DER per SEC 1, or raw).
    @Test func aPaymentConfirmedByTheDevicesSignature() async throws {
        let world = try APIWorld()
        _ = try world.wallets.registerMerchant(id: "M-FISH", name: "海鲜馆", category: "dining")
        let qr = try world.wallets.merchantQR(id: "M-FISH", amountFen: 3_000)
        try await world.serve {
            let device = try await world.signIn("13800000011")
            let other = try await world.signIn("13800000012")
            try world.fund("13800000011", fen: 20_000)
            let parameters = ["payload": qr, "amount": ""]
            let signed = try await world.signature(device, operation: "qr_payment", parameters: parameters)
            let paid = try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "device_signature": signed], token: device.accessToken, key: "sig-1")
            #expect(paid.status == 201, "\(paid.body)")
            #expect(try world.balanceFen("13800000011") == 17_000)
            // A challenge confirms one payment.
            let again = try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "device_signature": signed], token: device.accessToken, key: "sig-2")
            #expect(again.status == 403)
            #expect(again.problem == "challenge_invalid")
            // Raw r||s is taken too.
            let raw = try await world.signature(device, operation: "qr_payment", parameters: parameters, der: false)
            #expect(try await world.call(.POST, "/v1/payments/qr", json: ["payload": qr, "device_signature": raw], token: device.accessToken, key: "sig-3").status == 201)
            #expect(try world.balanceFen("13800000011") == 14_000)
            // Signed for another payment (another amount): refused, and the challenge is spent.
            let elsewhere = try await world.signature(device, operation: "transfer", parameters: ["to_phone": "13800000012", "amount": "1.00"])
            let mismatch = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000012", "amount": "100.00", "device_signature": elsewhere], token: device.accessToken, key: "sig-4")
            #expect(mismatch.problem == "signature_invalid")
            let spent = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000012", "amount": "1.00", "device_signature": elsewhere], token: device.accessToken, key: "sig-4")
            #expect(spent.problem == "challenge_invalid")
            // Another device's challenge, or a key that is not this device's.
            let theirs = try await world.signature(other, operation: "transfer", parameters: ["to_phone": "13800000012", "amount": "1.00"])
            #expect(try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000012", "amount": "1.00", "device_signature": theirs], token: device.accessToken, key: "sig-5").problem == "challenge_invalid")
            // A challenge lasts two minutes.
            let late = try await world.signature(device, operation: "transfer", parameters: ["to_phone": "13800000012", "amount": "1.00"])
            world.clock.advance(micros: 121_000_000)
            #expect(try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000012", "amount": "1.00", "device_signature": late], token: device.accessToken, key: "sig-6").problem == "challenge_invalid")
            #expect(try world.balanceFen("13800000011") == 14_000)
            // Neither factor: refused before anything.
            let none = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000012", "amount": "1.00"], token: device.accessToken, key: "sig-7")
            #expect(none.status == 422)
            #expect(none.problem == "confirmation_required")
        }
    }

    /// A large payment, and any payment from a device registered in the last day, needs both
    /// the password and the device's signature.
    @Test func largePaymentsAndNewDevicesNeedBothFactors() async throws {
        let world = try APIWorld(newDeviceSeconds: 86_400)
        try await world.serve {
            let device = try await world.signIn("13800000013")
            _ = try await world.signIn("13800000014")
            try world.fund("13800000013", fen: 2_000_000)
            let small = ["to_phone": "13800000014", "amount": "10.00"]
            let password = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000014", "amount": "10.00", "payment_password": "135790"], token: device.accessToken, key: "n-1")
            #expect(password.status == 403)
            #expect(password.problem == "second_factor_required")
            let signature = try await world.signature(device, operation: "transfer", parameters: small)
            let signed = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000014", "amount": "10.00", "device_signature": signature], token: device.accessToken, key: "n-2")
            #expect(signed.problem == "second_factor_required")
            let both = try await world.signature(device, operation: "transfer", parameters: small)
            let paid = try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000014", "amount": "10.00", "payment_password": "135790", "device_signature": both], token: device.accessToken, key: "n-3")
            #expect(paid.status == 201, "\(paid.body)")
            #expect(try world.balanceFen("13800000014") == 1_000)
        }
        let settled = try APIWorld()
        try await settled.serve {
            let device = try await settled.signIn("13800000015")
            _ = try await settled.signIn("13800000016")
            try settled.fund("13800000015", fen: 2_000_000)
            let large = ["to_phone": "13800000016", "amount": "5000.00"]
            let signature = try await settled.signature(device, operation: "transfer", parameters: large)
            #expect(try await settled.call(.POST, "/v1/transfers", json: ["to_phone": "13800000016", "amount": "5000.00", "device_signature": signature], token: device.accessToken, key: "l-1").problem == "second_factor_required")
            #expect(try await settled.call(.POST, "/v1/transfers", json: ["to_phone": "13800000016", "amount": "5000.00", "payment_password": "135790"], token: device.accessToken, key: "l-2").problem == "second_factor_required")
            let both = try await settled.signature(device, operation: "transfer", parameters: large)
            #expect(try await settled.call(.POST, "/v1/transfers", json: ["to_phone": "13800000016", "amount": "5000.00", "payment_password": "135790", "device_signature": both], token: device.accessToken, key: "l-3").status == 201)
            #expect(try settled.balanceFen("13800000016") == 500_000)
            // Below the threshold one factor is enough.
            let one = try await settled.signature(device, operation: "transfer", parameters: ["to_phone": "13800000016", "amount": "4999.99"])
            #expect(try await settled.call(.POST, "/v1/transfers", json: ["to_phone": "13800000016", "amount": "4999.99", "device_signature": one], token: device.accessToken, key: "l-4").status == 201)
        }
    }

    /// Answers to idempotency keys are kept 48 hours (the draft asks at least 24), then
    /// forgotten by the server's housekeeping; challenges an hour after they were made.
    @Test func answersAndChallengesAreForgottenAfterTheirTime() async throws {
        let world = try APIWorld()
        try await world.serve {
            let device = try await world.signIn("13800000017")
            _ = try await world.signIn("13800000018")
            try world.fund("13800000017", fen: 1_000)
            #expect(try await world.call(.POST, "/v1/transfers", json: ["to_phone": "13800000018", "amount": "1.00", "payment_password": "135790"], token: device.accessToken, key: "kept").status == 201)
            _ = try await world.signature(device, operation: "transfer", parameters: ["to_phone": "13800000018", "amount": "1.00"])
        }
        func count(_ table: String) throws -> Int? { try world.store.database.read { try $0.int("SELECT count(*) FROM \(table)") } }
        world.clock.advance(micros: 47 * 3_600 * 1_000_000)
        #expect(try world.access.purge() == 1)
        #expect(try count("app_requests") == 1)
        #expect(try count("app_challenges") == 0)
        world.clock.advance(micros: 2 * 3_600 * 1_000_000)
        #expect(try world.access.purge() == 1)
        #expect(try count("app_requests") == 0)
    }

    /// RFC 6585 section 4: each device, and each wallet across its devices, has its own token
    /// bucket behind the access token; over it a 429 problem with Retry-After.
    @Test func eachDeviceAndEachWalletHasItsOwnRate() async throws {
        let world = try APIWorld()
        try await world.serve(deviceLimit: .init(burst: 3, perSecond: 0.01), walletLimit: .init(burst: 5, perSecond: 0.01)) {
            let phone = try await world.signIn("13800000019")
            let tablet = try await world.signIn("13800000019", name: nil, label: "tablet")
            let other = try await world.signIn("13800000020")
            for _ in 0..<3 { #expect(try await world.call(.GET, "/v1/wallet", token: phone.accessToken).status == 200) }
            let over = try await world.call(.GET, "/v1/wallet", token: phone.accessToken)
            #expect(over.status == 429)
            #expect(over.problem == "rate_limited")
            #expect(Int(over.headers["retry-after"] ?? "") ?? 0 >= 1)
            #expect(try over.json()["detail"] as? String == "Too many requests from this device; wait before trying again.")
            // The tablet has a bucket of its own, but the wallet's (5) is shared: 3 + 2.
            for _ in 0..<2 { #expect(try await world.call(.GET, "/v1/wallet", token: tablet.accessToken).status == 200) }
            let wallet = try await world.call(.GET, "/v1/wallet", token: tablet.accessToken)
            #expect(wallet.status == 429)
            #expect(try wallet.json()["detail"] as? String == "Too many requests from this wallet; wait before trying again.")
            // Another wallet is not held back.
            #expect(try await world.call(.GET, "/v1/wallet", token: other.accessToken).status == 200)
        }
    }

    /// Server-sent events (WHATWG HTML, section 9.2): a security alert reaches the wallet's
    /// open stream at once, with its id; a reconnect with Last-Event-ID resumes after it.
    @Test func securityAlertsReachTheOpenStreamAtOnce() async throws {
        let world = try APIWorld()
        try await world.serve {
            let phone = try await world.signIn("13800000021")
            let token = phone.accessToken
            let base = world.base
            let stream = Task {
                var request = HTTPClientRequest(url: base + "/v1/alerts?timeout=3")
                request.headers.add(name: "Authorization", value: "Bearer " + token)
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
                var text = ""
                for try await part in response.body { text += String(buffer: part) }
                return (Int(response.status.code), response.headers.first(name: "content-type") ?? "", text)
            }
            try await Task.sleep(for: .milliseconds(300))
            // A new device of the wallet: the alert goes to the open stream.
            _ = try await world.signIn("13800000021", name: nil, label: "tablet")
            let (status, type, text) = try await stream.value
            #expect(status == 200)
            #expect(type == "text/event-stream")
            #expect(text.hasPrefix("retry: 2000\n\n"))
            let events = text.components(separatedBy: "\n\n").filter { $0.contains("event: security_alert") }
            #expect(events.count == 1, "\(text)")
            let id = try #require(events.first?.split(separator: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) })
            #expect(events.first?.contains("\"event\":\"new_device\"") == true)
            #expect(events.first?.contains("13800000021") == false)
            // Resumed after that event: nothing more; from the start: it again.
            let after = try await world.call(.GET, "/v1/alerts?timeout=1", token: token, headers: [("Last-Event-ID", id)])
            #expect(!after.body.contains("event: security_alert"))
            let again = try await world.call(.GET, "/v1/alerts?timeout=1", token: token, headers: [("Last-Event-ID", "0")])
            #expect(again.body.contains("id: \(id)\nevent: security_alert"))
            #expect(try await world.call(.GET, "/v1/alerts?timeout=1", token: token, headers: [("Last-Event-ID", "x")]).status == 400)
            #expect(try await world.call(.GET, "/v1/alerts?timeout=0", token: token).status == 400)
            #expect(try await world.call(.GET, "/v1/alerts?timeout=1").status == 401)
        }
    }

    /// Real-name verification, a card and a top-up through the app: personal data goes in
    /// and comes back masked only; the card is the wallet's own; the top-up is idempotent.
    @Test func aResidentVerifiesBindsACardAndTopsUp() async throws {
        let world = try APIWorld()
        try await world.serve {
            let device = try await world.signIn("13800000022")
            let other = try await world.signIn("13800000023")
            let token = device.accessToken
            let early = try await world.call(.POST, "/v1/cards", json: ["card_number": "6222020200112233446", "bank": "ICBC"], token: token)
            #expect(early.status == 403)
            #expect(early.problem == "kyc_required")
            // GB 11643: the check character of 11010519491231002X is X; 0 is wrong.
            let wrong = try await world.call(.POST, "/v1/kyc", json: ["name": "李雷", "id_number": "110105194912310020"], token: token)
            #expect(wrong.status == 422)
            #expect(wrong.problem == "invalid_id_number")
            let submitted = try await world.call(.POST, "/v1/kyc", json: ["name": "李雷", "id_number": "11010519491231002X"], token: token)
            #expect(submitted.status == 202)
            #expect(!submitted.body.contains("11010519491231002X"))
            #expect(try submitted.json()["status"] as? String == "submitted")
            #expect(try await world.call(.POST, "/v1/kyc", json: ["name": "李雷", "id_number": "11010519491231002X"], token: token).problem == "kyc_pending")
            _ = try world.wallets.approveKYC(phone: "13800000022", kycClass: 2)

            // ISO/IEC 7812: the Luhn check catches a mistyped digit.
            let luhn = try await world.call(.POST, "/v1/cards", json: ["card_number": "6222020200112233445", "bank": "ICBC"], token: token)
            #expect(luhn.problem == "invalid_card_number")
            let bound = try await world.call(.POST, "/v1/cards", json: ["card_number": "6222 0202 0011 2233 446", "bank": "ICBC"], token: token)
            #expect(bound.status == 201)
            #expect(!bound.body.contains("6222020200112233446"))
            let card = try bound.json()
            #expect(card["masked"] as? String == "6222 **** **** 3446")
            let cardID = try #require(card["id"] as? Int)
            #expect(try await world.call(.GET, "/v1/cards", token: token).json()["cards"].flatMap { $0 as? [Any] }?.count == 1)

            let topUp = try await world.call(.POST, "/v1/top-ups", json: ["card_id": cardID, "amount": "100.00"], token: token, key: "t-1")
            #expect(topUp.status == 201)
            #expect(try world.balanceFen("13800000022") == 10_000)
            let again = try await world.call(.POST, "/v1/top-ups", json: ["card_id": cardID, "amount": "100.00"], token: token, key: "t-1")
            #expect(again.headers["idempotent-replayed"] == "true")
            #expect(try world.balanceFen("13800000022") == 10_000)
            #expect(try await world.call(.POST, "/v1/top-ups", json: ["card_id": cardID, "amount": "100.00"], token: token).problem == "idempotency_key_missing")
            // Another wallet's token cannot top up from, see or unbind this card.
            let theirs = try await world.call(.POST, "/v1/top-ups", json: ["card_id": cardID, "amount": "1.00"], token: other.accessToken, key: "t-2")
            #expect(theirs.status == 404)
            #expect(theirs.problem == "card_not_found")
            #expect(try await world.call(.GET, "/v1/cards", token: other.accessToken).json()["cards"].flatMap { $0 as? [Any] }?.count == 0)
            #expect(try await world.call(.DELETE, "/v1/cards/\(cardID)", token: other.accessToken).status == 404)
            #expect(try world.balanceFen("13800000023") == 0)

            let unbound = try await world.call(.DELETE, "/v1/cards/\(cardID)", token: token)
            #expect(unbound.status == 200)
            #expect(try unbound.json()["status"] as? String == "unbound")
            #expect(try await world.call(.DELETE, "/v1/cards/\(cardID)", token: token).status == 404)
        }
    }

    /// Many requests for a code to one number at once: one code is sent, the others are told
    /// to wait (on PostgreSQL the requests of one number take turns; nothing else would).
    @Test func codesAskedForAtOnceSendOne() async throws {
        let world = try APIWorld()
        try await world.serve {
            let base = world.base
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var request = HTTPClientRequest(url: base + "/v1/sms-codes")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(ByteBuffer(string: "{\"phone\":\"13800000024\"}"))
                        return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(30)).status.code)
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 202 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 429 }.count == 7, "\(statuses)")
            #expect(try world.store.database.read { try $0.int("SELECT count(*) FROM app_sms_codes") } == 1)
        }
    }
}
