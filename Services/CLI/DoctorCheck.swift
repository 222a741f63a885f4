import AgentConnectCore

/// One line of `agentconnect doctor`: what was checked, how it went, and what to fix.
struct DoctorCheck: Sendable {
    /// `ok`, `warn` (works, but not as it should in production) or `fail` (doctor exits 1).
    enum Status: String, Sendable {
        case ok, warn, fail
    }

    var status: Status
    /// What was checked (`redis`, `config outbound`, …).
    var name: String
    /// What was found; never a secret.
    var detail: String
    /// What to do about a `warn` or `fail`.
    var fix: String?

    static func ok(_ name: String, _ detail: String) -> DoctorCheck {
        DoctorCheck(status: .ok, name: name, detail: detail, fix: nil)
    }

    static func warn(_ name: String, _ detail: String, fix: String) -> DoctorCheck {
        DoctorCheck(status: .warn, name: name, detail: detail, fix: fix)
    }

    static func fail(_ name: String, _ detail: String, fix: String) -> DoctorCheck {
        DoctorCheck(status: .fail, name: name, detail: detail, fix: fix)
    }

    /// `fail  redis eviction: maxmemory_policy is allkeys-lru — fix: set maxmemory-policy noeviction`.
    var line: String {
        let head = status.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)
        var text = "\(head)  \(name): \(detail)"
        if let fix, status != .ok { text += " — fix: \(fix)" }
        return Self.redactingCredentials(text)
    }

    /// `redis://:secret@host` → `redis://***@host`: URLs in errors never show their credentials.
    static func redactingCredentials(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let scheme = rest.range(of: "://") {
            result += rest[..<scheme.upperBound]
            rest = rest[scheme.upperBound...]
            let authority = rest.prefix { !"/ '\"?#".contains($0) }
            if let at = authority.lastIndex(of: "@") {
                result += "***"
                rest = rest[at...]
            }
        }
        return result + rest
    }

    /// An error as a check's detail: a timeout reads "no answer in time".
    static func describe(_ error: any Error) -> String {
        error is TimeoutError ? "no answer in time (--timeout)" : "\(error)"
    }

    /// A failing check for a configuration error, naming the variable and what to do with it.
    static func configuration(_ name: String, _ error: any Error) -> DoctorCheck {
        guard let error = error as? ConfigurationError else {
            return .fail(name, "\(error)", fix: "correct the configuration (see .env.example)")
        }
        let action = error.reason.contains("required") ? "set" : "correct"
        return .fail(name, "\(error.variable) \(error.reason)", fix: "\(action) \(error.variable) (see .env.example)")
    }
}
