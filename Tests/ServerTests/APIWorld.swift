import AppAccess
import AsyncHTTPClient
import Billing
import Campaigns
import Crypto
import Foundation
import GRDB
import Ledger
import NIOCore
import NIOHTTP1
import Payments
import QDSchema
import QDSQL
import QDTestEngines
import QDTestSupport
import QDWalletServer
import Synchronization
import Testing
import Wallet

/// A wallet server on a database of its own (a SQLite file, or a schema of its own on the
/// PostgreSQL server when the run is on PostgreSQL), with a manual clock, a fast password
/// hasher and a random data key, spoken to with a real HTTP client on a loopback port.
final class APIWorld: @unchecked Sendable {
    let directory: URL
    let store: SQLLedgerStore
    let postgres: PostgresDatabase?
    let clock: ManualClock
    let wallets: WalletService
    let access: AppAccess
    let key = DataKey.random()
    /// The campaigns bills are paid with (Jobs/campaigns when a test asks for them).
    var campaigns: [Campaign] = []
    /// The server's delivery of urgent messages (none unless a test sets it).
    var deliverUrgent: (@Sendable () throws -> (delivered: Int, failed: Int))?
    var base = ""

    /// 2026-11-27T10:00:00+08:00
    static let start: TimestampMicros = 1_795_744_800_000_000

    /// `newDeviceSeconds`: how long a new device confirms payments with both factors (none
    /// here unless a test says so).
    init(newDeviceSeconds: Int64 = 0, qrCampaigns: [Campaign] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if let database = try TestEngine.postgres("api", migrations: { try QDWalletSchema.postgresMigrations() }) {
            store = SQLLedgerStore(database: database)
            postgres = database
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: directory.appendingPathComponent("w.sqlite").path, migrator: QDWalletSchema.migrator()))
            postgres = nil
        }
        clock = ManualClock(Self.start)
        let ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        if !qrCampaigns.isEmpty {
            let now = clock.nowMicros()
            try store.transaction { db, _ in try CampaignBook.register(qrCampaigns, db: db, now: now) }
        }
        wallets = WalletService(store: store, ledger: ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: key,
                                planner: qrCampaigns.isEmpty ? nil : CampaignPlanner(campaigns: qrCampaigns, clock: clock))
        try wallets.adoptDataKey(key)
        var policy = AppAccess.Policy()
        policy.newDeviceSeconds = newDeviceSeconds
        access = AppAccess(wallets: wallets, dataKey: key, policy: policy)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? postgres?.dropSchema()
    }

    /// Runs `body` with the server listening; stops it as SIGTERM would.
    func serve(deviceLimit: TokenBuckets.Limit = .init(burst: 100_000, perSecond: 100_000), walletLimit: TokenBuckets.Limit = .init(burst: 100_000, perSecond: 100_000),
               _ body: () async throws -> Void) async throws {
        var options = WalletServer.Options(host: "127.0.0.1", port: 0)
        options.addressLimit = .init(burst: 100_000, perSecond: 100_000)
        options.deviceLimit = deviceLimit
        options.walletLimit = walletLimit
        var backend = WalletBackend(access: access, wallets: wallets, campaigns: campaigns)
        backend.alertPollInterval = .milliseconds(50)
        backend.deliverUrgent = deliverUrgent
        backend.urgentDeliveryInterval = .milliseconds(50)
        let server = WalletServer(options: options, document: ServerTests.document, backend: backend, readiness: {})
        try await Self.run(server) { url in
            base = url
            try await body()
        }
    }

    /// Runs `server` on the port the system chooses while `body` runs with its base URL, then
    /// stops it the way SIGTERM would (the task cancelled: graceful shutdown).
    static func run(_ server: WalletServer, _ body: (String) async throws -> Void) async throws {
        let port = Mutex<Int?>(nil)
        let task = Task { try await server.run { bound in port.withLock { $0 = bound } } }
        defer { task.cancel() }
        var waited = 0
        while port.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(20))
            waited += 1
            try #require(waited < 500, "the server did not start")
        }
        try await body("http://127.0.0.1:\(port.withLock { $0 }!)")
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "not a JSON object: \(body)")
        }
        /// The problem's code (`type` without its prefix).
        var problem: String? {
            (try? json())?["type"].flatMap { $0 as? String }.map { String($0.dropFirst("urn:qdwallet:problem:".count)) }
        }
    }

    func call(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, token: String? = nil, key: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        }
        if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
        if let key { request.headers.add(name: "Idempotency-Key", value: key) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        var collected: [String: String] = [:]
        for header in response.headers { collected[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), headers: collected, body: String(buffer: body))
    }

    /// The newest one-time code the outbox holds for a number (what the SMS sink would send).
    func smsCode(_ phone: String) throws -> String? {
        try store.database.read { db in
            try db.all("SELECT payload FROM outbox WHERE kind = 'sms_code' ORDER BY id DESC", []) { try $0.text(0) }
        }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
            .first { $0["phone"] == phone }?["code"]
    }

    /// The outbox's security alerts of a wallet, oldest first: their `event`s.
    func alerts(walletID: Int64) throws -> [String] {
        try store.database.read { db in
            try db.all("SELECT payload FROM outbox WHERE kind = 'security_alert' AND wallet_id = ? ORDER BY id", [walletID]) { try $0.text(0) }
        }.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String])?["event"] }
    }

    static func deviceKey() -> String {
        P256.Signing.PrivateKey().publicKey.x963Representation.base64EncodedString()
    }

    /// What the device signs for a payment (the document's DeviceSignature): a challenge asked
    /// for with the device's token, signed with its key.
    func signature(_ device: Device, operation: String, parameters: [String: String], der: Bool = true) async throws -> [String: Any] {
        let reply = try await call(.POST, "/v1/challenges", token: device.accessToken)
        try #require(reply.status == 201, "\(reply.body)")
        let challenge = try reply.json()
        let nonce = try #require(challenge["nonce"] as? String)
        let id = try #require(challenge["challenge_id"] as? Int)
        let canonical = "{" + parameters.keys.sorted().map { "\"\($0)\":\"\(parameters[$0]!)\"" }.joined(separator: ",") + "}"
        let hash = SHA256.hash(data: Data(canonical.utf8)).map { String(format: "%02x", $0) }.joined()
        let message = Data("qdwallet-payment-v1\n\(nonce)\n\(operation)\n\(hash)".utf8)
        let signature = try device.privateKey.signature(for: message)
        return ["challenge_id": id, "signature": (der ? signature.derRepresentation : signature.rawRepresentation).base64EncodedString()]
    }

    /// A signed-in device: the code asked for and used, the wallet opened when new.
    struct Device {
        var walletID: Int64
        var deviceID: Int64
        var accessToken: String
        var refreshToken: String
        var privateKey: P256.Signing.PrivateKey
    }

    func signIn(_ phone: String, name: String? = "李雷", password: String = "135790", label: String = "phone") async throws -> Device {
        let sent = try await call(.POST, "/v1/sms-codes", json: ["phone": phone])
        try #require(sent.status == 202, "\(sent.body)")
        let code = try #require(try smsCode(phone))
        let privateKey = P256.Signing.PrivateKey()
        var body: [String: Any] = ["phone": phone, "code": code, "public_key": privateKey.publicKey.x963Representation.base64EncodedString(), "label": label, "payment_password": password]
        if let name { body["name"] = name }
        let reply = try await call(.POST, "/v1/devices", json: body)
        try #require(reply.status == 201, "\(reply.body)")
        let session = try reply.json()
        // The next code to this number may be asked for at once.
        clock.advance(micros: 61_000_000)
        return Device(walletID: try #require(session["wallet_id"] as? Int64 ?? (session["wallet_id"] as? Int).map(Int64.init)),
                      deviceID: try #require(session["device_id"] as? Int64 ?? (session["device_id"] as? Int).map(Int64.init)),
                      accessToken: try #require(session["access_token"] as? String), refreshToken: try #require(session["refresh_token"] as? String),
                      privateKey: privateKey)
    }

    /// A new access token for the device, from its refresh token.
    func refreshedToken(_ device: Device) async throws -> String {
        let reply = try await call(.POST, "/v1/tokens", json: ["refresh_token": device.refreshToken])
        try #require(reply.status == 200, "\(reply.body)")
        return try #require(try reply.json()["access_token"] as? String)
    }

    /// Puts `yuan` on a wallet as a resident would: real-name verification, a card, a top-up.
    func fund(_ phone: String, fen: Int64, idNumber: String = "11010519491231002X") throws {
        _ = try wallets.submitKYC(phone: phone, name: "李雷", idNumber: idNumber)
        _ = try wallets.approveKYC(phone: phone, kycClass: 2)
        let card = try wallets.bindCard(phone: phone, cardNumber: "6222020200112233446", bank: "ICBC")
        _ = try wallets.topUp(phone: phone, cardID: card.id, amountFen: fen, idempotencyKey: "fund-\(phone)")
    }

    /// Another top-up from the wallet's first card.
    func topUp(_ phone: String, fen: Int64) throws {
        let card = try #require(try wallets.cards(phone: phone).first)
        _ = try wallets.topUp(phone: phone, cardID: card.id, amountFen: fen, idempotencyKey: UUID().uuidString)
    }

    /// The billers of Jobs/billers.toml, registered as `qdwallet init` registers them.
    func registerBillers() throws {
        let billers = try Biller.load(path: repositoryRoot + "/Jobs/billers.toml")
        let clock = self.clock
        _ = try store.transaction { db, tx in try Biller.register(billers, db: db, ledger: tx, clock: clock) }
    }

    /// The campaigns of Jobs/campaigns, registered as `qdwallet serve` registers them.
    func useJobsCampaigns() throws {
        let loaded = try Campaign.loadAll(directory: repositoryRoot + "/Jobs/campaigns")
        let now = clock.nowMicros()
        try store.transaction { db, _ in try CampaignBook.register(loaded, db: db, now: now) }
        campaigns = loaded
    }

    /// A bill as the nightly run leaves it before deciding it (`new`), of `fen` due.
    func stageBill(biller: String, billID: String, customer: String, fen: Int64) throws {
        let now = clock.nowMicros()
        _ = try store.transaction { db, _ in
            try db.run("""
                INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit,
                    amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, updated_at)
                VALUES (?, ?, 'F-1', 1, '2026-11-27', ?, '李*', '市南区', '2026-11', '1.0', 'm3', ?, 0, ?, '2026-11-27', '2026-12-20', 'new', ?)
                """, [biller, billID, customer, fen, fen, now])
        }
    }

    func balanceFen(_ phone: String) throws -> Int64 {
        try wallets.balance(phone: phone).balanceFen
    }
}
