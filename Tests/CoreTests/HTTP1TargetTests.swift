import Testing

@testable import TwilioKit

@Suite("HTTP1Target: URLs taken apart for the HTTP/1.1 client")
struct HTTP1TargetTests {
    @Test("scheme, host, port, path and Host header; fragments dropped; an empty path is /")
    func parts() throws {
        let plain = try #require(HTTP1Target("http://127.0.0.1:19190/2010-04-01/Accounts/AC1/Messages.json?x=1#frag"))
        #expect(plain.endpoint == HTTP1Endpoint(tls: false, host: "127.0.0.1", port: 19190))
        #expect(plain.pathAndQuery == "/2010-04-01/Accounts/AC1/Messages.json?x=1")
        #expect(plain.hostHeader == "127.0.0.1:19190")
        let secure = try #require(HTTP1Target("https://api.twilio.com"))
        #expect(secure.endpoint == HTTP1Endpoint(tls: true, host: "api.twilio.com", port: 443))
        #expect(secure.pathAndQuery == "/")
        #expect(secure.hostHeader == "api.twilio.com")
        #expect(try #require(HTTP1Target("https://api.twilio.com:443?a=b")).pathAndQuery == "/?a=b")
        #expect(try #require(HTTP1Target("https://api.twilio.com:443/x")).hostHeader == "api.twilio.com")
        let v6 = try #require(HTTP1Target("http://[::1]:8080/p"))
        #expect(v6.endpoint == HTTP1Endpoint(tls: false, host: "::1", port: 8080))
        #expect(v6.hostHeader == "[::1]:8080")
        #expect(try #require(HTTP1Target("http://[::1]/p")).hostHeader == "[::1]")
        #expect(try #require(HTTP1Target("http://bücher.example/ä?q=ü")).pathAndQuery == "/ä?q=ü")
    }

    @Test("refused: other schemes, user info, spaces and control characters, bad ports, no host")
    func refused() {
        for url in [
            "ftp://x/", "x/y", "http://user@host/", "http://a b/", "http://a/\u{7F}", "http://a/\n", "http://a:0/", "http://a:65536/",
            "http://a:8o/", "http://a:123456/", "http:///x", "http://:80/", "http://[::1/", "http://[::1]x/", "http://[]/", "",
        ] {
            #expect(HTTP1Target(url) == nil, "\(url)")
        }
    }
}
