import AgentConnectCore

/// Strips a partition suffix so metrics have one series per logical stream.
func streamLabel(_ stream: String) -> String {
    if stream.hasPrefix(Streams.inbound + ":") { return Streams.inbound }
    if stream.hasPrefix("tac:voice:") { return "tac:voice" }
    return stream
}
