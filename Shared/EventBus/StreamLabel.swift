import AgentConnectCore

/// Strips a partition suffix so metrics have one series per logical stream.
func streamLabel(_ stream: String) -> String {
    if stream.hasPrefix(Streams.inbound + ":") { return Streams.inbound }
    if stream.hasPrefix(Streams.voicePrefix + ":") { return Streams.voicePrefix }
    return stream
}
