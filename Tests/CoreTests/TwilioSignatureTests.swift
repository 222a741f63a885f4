import AgentConnectCore
import Foundation
import Testing
import TwilioKit

@Suite("Twilio request signatures")
struct TwilioSignatureTests {
    let signer = TwilioSignature(authToken: "12345")
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    let params = [
        ("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212"),
    ]

    @Test("matches Twilio's documented example, params in any order")
    func documentedExample() {
        #expect(signer.compute(url: url, params: params.reversed()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        #expect(signer.isValid("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url, params: params))
    }

    @Test("rejects a signature for other params or another token")
    func rejectsTampering() {
        let good = signer.compute(url: url, params: params)
        #expect(!signer.isValid(good, url: url, params: params + [("Extra", "1")]))
        #expect(!TwilioSignature(authToken: "other").isValid(good, url: url, params: params))
        #expect(!signer.isValid("", url: url, params: params))
    }

    @Test("one check covers every candidate URL; only the signature as Twilio writes it matches")
    func candidatesAndEncoding() {
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        #expect(signer.isValid(good, urls: ["https://proxy.internal/myapp.php?foo=1&bar=2", url], params: params))
        #expect(!signer.isValid(good, urls: ["https://proxy.internal/myapp.php?foo=1&bar=2"], params: params))
        #expect(!signer.isValid(good, urls: [], params: params))
        // The same 20 bytes written with different unused bits, or without padding: refused.
        #expect(!signer.isValid("0/KCTR6DLpKmkAf8muzZqo1nDgR=", url: url, params: params))
        #expect(!signer.isValid("0/KCTR6DLpKmkAf8muzZqo1nDgQ", url: url, params: params))
        #expect(!signer.isValid(String(good.dropLast(4)) + "AAA=", url: url, params: params))
    }

    @Test("accepts the URL signed with or without its port")
    func portVariants() {
        let withPort = signer.compute(url: "https://example.com:443/webhook", params: [])
        #expect(signer.isValid(withPort, url: "https://example.com/webhook"))
        let withoutPort = signer.compute(url: "https://example.com/webhook", params: [])
        #expect(signer.isValid(withoutPort, url: "https://example.com:443/webhook"))
    }

    @Test("port variants on the URL's bytes: default ports by scheme, IPv6 literals, no scheme")
    func portVariantsByScheme() {
        let http = signer.compute(url: "http://example.com/sms?a=1")
        #expect(signer.isValid(http, url: "http://example.com:80/sms?a=1"))
        #expect(signer.isValid(signer.compute(url: "HTTPS://example.com:443?x"), url: "HTTPS://example.com?x"))
        #expect(signer.isValid(signer.compute(url: "wss://relay.example.com:443/ws"), url: "wss://relay.example.com/ws"))
        // An IPv6 literal's colons are not a port; its port is.
        #expect(signer.isValid(signer.compute(url: "https://[::1]/x"), url: "https://[::1]:8443/x"))
        #expect(signer.isValid(signer.compute(url: "https://[::1]:443/x"), url: "https://[::1]/x"))
        // No scheme: the URL as it stands, nothing else.
        #expect(signer.isValid(signer.compute(url: "example.com/x"), url: "example.com/x"))
        #expect(!signer.isValid(signer.compute(url: "example.com:80/x"), url: "example.com/x"))
    }

    @Test("bodySHA256 is read as a form reads the query: first one wins, escapes decoded, hex in either case")
    func bodySHA256Reading() {
        let body = Array(#"{"eventType":"COMMUNICATION_CREATED"}"#.utf8)
        let hash = TwilioSignature.bodyHash(body)
        func valid(_ url: String) -> Bool { signer.isValidJSON(signer.compute(url: url), url: url, body: body) }
        #expect(valid("https://example.com/webhook?a=1&bodySHA256=\(hash)&b=2"))
        #expect(valid("https://example.com/webhook?bodySHA256=\(hash.uppercased())"))
        #expect(valid("https://example.com/webhook?body%53HA256=\(hash)&x=a+b"))
        #expect(!valid("https://example.com/webhook?bodySHA256=\(String(repeating: "0", count: 64))&bodySHA256=\(hash)"))
        #expect(!valid("https://example.com/webhook?bodySHA256"))
        #expect(!valid("https://example.com/webhook?bodysha256=\(hash)"))
        #expect(!valid("https://example.com/webhook"))
    }

    @Test("base64 as Foundation writes it, every padding")
    func base64() {
        var generator = SystemRandomNumberGenerator()
        for count in 0..<40 {
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let ours = bytes.withUnsafeBytes { String(decoding: TwilioSignature.base64($0), as: UTF8.self) }
            #expect(ours == Data(bytes).base64EncodedString())
        }
    }

    @Test("JSON webhooks: the signature covers the URL with bodySHA256 and the hash must match the body")
    func jsonBodies() {
        let body = Array(#"{"eventType":"COMMUNICATION_CREATED"}"#.utf8)
        let signed = "https://example.com/webhook?bodySHA256=" + TwilioSignature.bodyHash(body)
        let signature = signer.compute(url: signed)
        #expect(signer.isValidJSON(signature, url: signed, body: body))
        #expect(!signer.isValidJSON(signature, url: signed, body: Array(#"{"eventType":"X"}"#.utf8)))
        #expect(!signer.isValidJSON(signer.compute(url: "https://example.com/webhook"), url: "https://example.com/webhook", body: body))
    }

    @Test("public URL is rebuilt from the first forwarded value; WebSocket URLs use wss")
    func publicURL() {
        let urls = PublicURL.candidates(
            pathAndQuery: "/ws?x=1", forwardedProto: "https, http", forwardedHost: "a.example.com, b", host: "internal:8081",
            publicDomain: "https://voice.example.com/", websocket: true)
        #expect(urls == ["wss://a.example.com/ws?x=1", "wss://voice.example.com/ws?x=1"])
        #expect(
            PublicURL.candidates(pathAndQuery: "/webhook", forwardedProto: nil, forwardedHost: nil, host: "127.0.0.1:8082", publicDomain: nil)
                == ["http://127.0.0.1:8082/webhook"])
        // Empty values before the first are skipped, spaces and tabs around it are not part of it; a
        // header with nothing in it falls back to Host.
        #expect(
            PublicURL.candidates(
                pathAndQuery: "/webhook", forwardedProto: " HTTPS ,http", forwardedHost: ",\t a.example.com\t, b", host: "internal", publicDomain: nil
            )
                == ["https://a.example.com/webhook"])
        #expect(
            PublicURL.candidates(pathAndQuery: "/w", forwardedProto: nil, forwardedHost: " , ", host: "h:1", publicDomain: "  ")
                == ["http://h:1/w"])
    }

    @Test("a configured public domain loses its spaces, one scheme in any case and trailing slashes")
    func publicDomain() {
        #expect(PublicDomain.normalized(" HTTPS://Voice.Example.com// ") == "Voice.Example.com")
        #expect(PublicDomain.normalized("wss://relay.example.com:8443/") == "relay.example.com:8443")
        #expect(PublicDomain.normalized("http://https://x") == "https://x")
        #expect(PublicDomain.normalized("x.example.com") == "x.example.com")
        #expect(PublicDomain.normalized("ws:/x") == "ws:/x")
        for empty in [nil, "", " \t", "https://", "https:///", "/"] { #expect(PublicDomain.normalized(empty) == nil) }
        #expect(PublicDomain.normalized("bücher.example/") == "bücher.example")
    }

    @Test("form decoding is strict about bad percent-encoding and invalid UTF-8")
    func formDecoding() throws {
        let pairs = try #require(FormCoding.decodeStrict("Body=hello+world%21&From=%2B1555"))
        #expect(pairs.map(\.0) == ["Body", "From"])
        #expect(pairs.map(\.1) == ["hello world!", "+1555"])
        #expect(FormCoding.decodeStrict("Body=%zz") == nil)
        #expect(FormCoding.decodeStrict("Body=%ff%fe") == nil)
        #expect(FormCoding.decode(FormCoding.encode([("a b", "c&d=é")])).first?.1 == "c&d=é")
    }
}
