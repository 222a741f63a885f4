import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOCore
import TwilioKit

extension DoctorChecks {
    /// `TWILIO_VOICE_PUBLIC_DOMAIN` names a host Twilio can reach (not loopback, private or an example).
    func publicDomain() -> DoctorCheck {
        let name = "public domain"
        guard let raw = environment.string("TWILIO_VOICE_PUBLIC_DOMAIN") else {
            return .warn(
                name, "TWILIO_VOICE_PUBLIC_DOMAIN is not set: voice-relay refuses to start and Twilio has no URL for calls",
                fix: "set it to voice-relay's public host name, e.g. voice.yourcompany.com")
        }
        guard let domain = PublicDomain.normalized(raw) else {
            return .fail(name, "TWILIO_VOICE_PUBLIC_DOMAIN is not a host name", fix: "set it to voice-relay's public host name")
        }
        if domain.contains("/") {
            return .warn(name, "TWILIO_VOICE_PUBLIC_DOMAIN \(domain) has a path; it is a host name only", fix: "drop the path")
        }
        if let problem = Self.unreachableReason(host: Self.host(of: domain)) {
            return .warn(
                name, "TWILIO_VOICE_PUBLIC_DOMAIN \(domain) is \(problem): Twilio cannot reach it",
                fix: "set it to voice-relay's public host name (a local address is fine only with twilio-sim)")
        }
        return .ok(name, "TWILIO_VOICE_PUBLIC_DOMAIN \(domain)")
    }

    /// The host of `host[:port]` or `[v6]:port`.
    static func host(of domain: String) -> String {
        if domain.hasPrefix("["), let close = domain.firstIndex(of: "]") {
            return String(domain[domain.index(after: domain.startIndex)..<close])
        }
        let colons = domain.filter { $0 == ":" }.count
        if colons == 1, let colon = domain.firstIndex(of: ":") { return String(domain[..<colon]) }
        return domain
    }

    /// Why Twilio could not reach `host`, or nil when it looks public.
    static func unreachableReason(host raw: String) -> String? {
        let host = raw.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        if host == "localhost" || host.hasSuffix(".localhost") || host.hasPrefix("127.") || host == "::1" || host == "0.0.0.0" || host == "::" {
            return "a loopback address"
        }
        let octets = host.split(separator: ".").compactMap { Int($0) }
        if octets.count == 4 {
            if octets[0] == 10 || (octets[0] == 192 && octets[1] == 168) || (octets[0] == 172 && (16...31).contains(octets[1]))
                || (octets[0] == 169 && octets[1] == 254)
            {
                return "a private address"
            }
            return nil
        }
        if host.hasPrefix("fc") || host.hasPrefix("fd") || host.hasPrefix("fe80:") { return host.contains(":") ? "a private address" : nil }
        for example in ["example.com", "example.net", "example.org"] where host == example || host.hasSuffix("." + example) {
            return "an example domain"
        }
        for suffix in [".example", ".test", ".invalid", ".local", ".internal", ".lan", ".home.arpa"] where host.hasSuffix(suffix) {
            return "a name that exists only on a local network or in examples"
        }
        if !host.contains(".") { return "a single-label name (not public DNS)" }
        return nil
    }

    /// Fetches the account (`GET /2010-04-01/Accounts/{sid}.json`, Basic auth) from `TWILIO_API_BASE_URL`:
    /// 200 means the credentials work there.
    func twilioCredentials() async -> DoctorCheck {
        let name = "twilio credentials"
        let needsREST =
            services.contains("outbound")
            || (services.contains("voice-relay") && environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID") != nil)
        let api: TwilioAPIConfiguration
        do {
            api = try TwilioAPIConfiguration(environment: environment)
        } catch {
            guard needsREST else { return .ok(name, "not used by \(services.joined(separator: ", "))") }
            return .configuration(name, error)
        }
        let sid = api.accountSid.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? api.accountSid
        let base = api.apiBaseURL
        var request = HTTPClientRequest(url: "\(base)/2010-04-01/Accounts/\(sid).json")
        request.headers.add(name: "Authorization", value: "Basic " + Data("\(api.username):\(api.password)".utf8).base64EncodedString())
        request.headers.add(name: "Accept", value: "application/json")
        let usesKey = environment.string("TWILIO_API_KEY") != nil
        let credentials = usesKey ? "TWILIO_API_KEY and TWILIO_API_SECRET" : "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        let status: UInt
        let body: JSONValue?
        let prepared = request
        do {
            (status, body) = try await withTimeout(timeout, "GET \(base)/2010-04-01/Accounts") {
                let response = try await HTTPClient.shared.execute(prepared, timeout: .nanoseconds(timeout.nanoseconds))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                return (response.status.code, try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: bytes)))
            }
        } catch {
            return .fail(
                name, "cannot reach \(base): \(DoctorCheck.describe(error))", fix: "check TWILIO_API_BASE_URL and that this host can reach it")
        }
        let against = base == "https://api.twilio.com" ? "Twilio" : "\(base) (not api.twilio.com)"
        switch status {
        case 200:
            let state = body?["status"]?.string ?? "active"
            guard state == "active" else {
                return .fail(name, "account \(api.accountSid) is \(state) at \(against)", fix: "reactivate the account in the Twilio console")
            }
            return .ok(name, "accepted by \(against) for account \(api.accountSid)")
        case 401:
            return .fail(name, "\(against) refused the credentials (401)", fix: "check \(credentials)")
        case 403:
            return .fail(
                name, "\(against) forbids reading account \(api.accountSid) (403)", fix: "use a Standard API key of this account, or its auth token")
        case 404:
            return .fail(name, "account \(api.accountSid) not found at \(against) (404)", fix: "check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL")
        default:
            return .fail(name, "\(against) answered \(status) to GET /2010-04-01/Accounts/{sid}.json", fix: "check TWILIO_API_BASE_URL")
        }
    }
}
