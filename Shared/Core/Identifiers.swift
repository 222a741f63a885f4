/// FNV-1a 64-bit: a hash that is the same in every process and release, for partitioning and ids.
package func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return hash
}

/// Conversations on classic numbers (no Conversation Orchestrator) have no id from Twilio; this is
/// their stable id, the same in every service: `CL` + 16 hex digits of the channel and both addresses.
package func classicConversationId(channel: ChannelKind, agent: String, customer: String) -> String {
    let hex = String(stableHash("\(channel.rawValue)|\(agent)|\(customer)"), radix: 16)
    return "CL" + String(repeating: "0", count: 16 - hex.count) + hex
}
