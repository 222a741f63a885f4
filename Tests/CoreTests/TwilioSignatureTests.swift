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
