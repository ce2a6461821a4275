import Foundation
import QDWalletServer
import Testing

/// Token buckets, the client's address behind a trusted proxy, and the 429 they give.
@Suite struct RateLimitTests {
    @Test func aBucketGrantsItsBurstThenRefillsAtItsRate() {
        let buckets = TokenBuckets(.init(burst: 3, perSecond: 2))
        let start = ContinuousClock.now
        #expect(buckets.take("a", now: start) == nil)
        #expect(buckets.take("a", now: start) == nil)
        #expect(buckets.take("a", now: start) == nil)
        #expect(buckets.take("a", now: start) == 1)
        // Another key has its own bucket.
        #expect(buckets.take("b", now: start) == nil)
        // Half a second at 2 a second: one token.
        #expect(buckets.take("a", now: start + .milliseconds(500)) == nil)
        #expect(buckets.take("a", now: start + .milliseconds(500)) == 1)
        // Long at rest: the burst again, never more.
        let later = start + .seconds(60)
        for _ in 0..<3 { #expect(buckets.take("a", now: later) == nil) }
        #expect(buckets.take("a", now: later) != nil)
    }

    @Test func retryAfterIsTheWaitForTheNextToken() {
        let buckets = TokenBuckets(.init(burst: 1, perSecond: 0.1))
        let start = ContinuousClock.now
        #expect(buckets.take("a", now: start) == nil)
        #expect(buckets.take("a", now: start) == 10)
        #expect(buckets.take("a", now: start + .seconds(4)) == 6)
    }

    /// A scan from many addresses cannot grow the table past its bound.
    @Test func theTableOfBucketsIsBounded() {
        let buckets = TokenBuckets(.init(burst: 5, perSecond: 1), keysMax: 64)
        let start = ContinuousClock.now
        for i in 0..<10_000 { _ = buckets.take("10.0.\(i / 256).\(i % 256)", now: start + .milliseconds(i)) }
        #expect(buckets.take("fresh", now: start + .seconds(20)) == nil)
    }

    @Test func theClientIsThePeerUnlessThePeerIsATrustedProxy() {
        let client = ClientAddress(trustedProxies: ["10.0.0.1", "10.0.0.2"])
        // Anyone else's X-Forwarded-For is ignored: a client cannot pick its address.
        #expect(client.of(peer: "203.0.113.9", forwardedFor: ["198.51.100.1"]) == "203.0.113.9")
        // Through our proxies: the rightmost address that is not one of them.
        #expect(client.of(peer: "10.0.0.1", forwardedFor: ["198.51.100.1, 10.0.0.2"]) == "198.51.100.1")
        #expect(client.of(peer: "10.0.0.1", forwardedFor: ["192.0.2.7, 198.51.100.1"]) == "198.51.100.1")
        #expect(client.of(peer: "10.0.0.1", forwardedFor: ["192.0.2.7", "198.51.100.1"]) == "198.51.100.1")
        #expect(client.of(peer: "10.0.0.1", forwardedFor: ["2001:db8::1"]) == "2001:db8::1")
        // Garbage or nothing: the proxy's own address.
        #expect(client.of(peer: "10.0.0.1", forwardedFor: ["not-an-address"]) == "10.0.0.1")
        #expect(client.of(peer: "10.0.0.1", forwardedFor: []) == "10.0.0.1")
        #expect(client.of(peer: nil, forwardedFor: []) == "unknown")
    }
}
