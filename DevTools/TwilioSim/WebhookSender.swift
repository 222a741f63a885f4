import AgentConnectCore
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import TwilioKit

/// Sends webhooks signed as Twilio signs them, retrying on 5xx or no answer (as Twilio does).
struct WebhookSender: Sendable {
    let http: HTTPClient
    let signer: TwilioSignature
    let retries: Int
    let logger: Logger
    /// `(local, public)` base URLs: a webhook sent to a URL under `local` is signed for the same path
    /// under `public` (the URL Twilio is configured with, which the services verify against).
    var signedAs: [(local: String, public: String)] = []

    struct Outcome: Sendable {
        var status: Int
        var attempts: Int
        var body: String
    }

    /// POSTs JSON to `url` with `?bodySHA256=` and the signature over the full URL.
    func sendJSON(_ body: JSONValue, to url: String, idempotencyToken: String? = nil, signature override: String? = nil) async -> Outcome {
        let bytes = Array((try? JSONEncoder().encode(body)) ?? Data())
        let signedURL = url + (url.contains("?") ? "&" : "?") + "bodySHA256=" + TwilioSignature.bodyHash(bytes)
        let signature = override ?? signer.compute(url: publicURL(signedURL))
        return await send(url: signedURL, contentType: "application/json", body: bytes, signature: signature, token: idempotencyToken)
    }

    /// POSTs a form to `url`, signed over the URL and the sorted fields.
    func sendForm(_ fields: [(String, String)], to url: String, idempotencyToken: String? = nil) async -> Outcome {
        let body = Array(FormCoding.encode(fields).utf8)
        return await send(
            url: url, contentType: "application/x-www-form-urlencoded", body: body, signature: signer.compute(url: publicURL(url), params: fields),
            token: idempotencyToken)
    }

    /// The URL Twilio would have called for `url`.
    func publicURL(_ url: String) -> String {
        for (local, publicBase) in signedAs where url.hasPrefix(local) {
            return publicBase + url.dropFirst(local.count)
        }
        return url
    }

    private func send(url: String, contentType: String, body: [UInt8], signature: String, token: String?) async -> Outcome {
        var attempt = 0
        var delay = Duration.milliseconds(100)
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: contentType)
            request.headers.add(name: "X-Twilio-Signature", value: signature)
            if let token { request.headers.add(name: "I-Twilio-Idempotency-Token", value: token) }
            request.body = .bytes(ByteBuffer(bytes: body))
            var status = 0
            var text = ""
            do {
                let response = try await http.execute(request, timeout: .seconds(10))
                status = Int(response.status.code)
                text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            } catch {
                text = "\(error)"
            }
            if (status != 0 && status < 500) || attempt > retries {
                return Outcome(status: status, attempts: attempt, body: text)
            }
            logger.info("webhook not accepted; retrying as Twilio would", metadata: ["status": "\(status)", "attempt": "\(attempt)"])
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}
