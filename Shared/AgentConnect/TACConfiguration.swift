public import AgentConnectCore
import Foundation

/// Everything an agent author's code reads from the environment (each documented in .env.example).
/// The runtime reads its own settings (bind address, Redis, PostgreSQL, senders, partitions) from
/// ``environment`` when the worker starts.
public struct TACConfiguration: Sendable {
    /// `TWILIO_CONVERSATION_CONFIGURATION_ID`; nil = relay-only voice and classic messaging.
    public var conversationConfigurationId: String?
    /// `TWILIO_VOICE_PUBLIC_DOMAIN`, for outbound calls.
    public var voicePublicDomain: String?
    /// `TAC_MEMORY_MODE` and `TAC_<CHANNEL>_MEMORY_MODE`.
    public var memoryModes: [ChannelKind: MemoryMode]
    /// `OUTBOUND_URL`: the outbound service's API.
    public var outboundURL: String
    /// `OUTBOUND_API_TOKEN`: its bearer token.
    public var outboundAPIToken: String?
    /// `AGENT_MAX_DELIVERIES`: tries before a failing turn goes to the dead-letter stream.
    public var maxDeliveries: Int
    /// `AGENT_VISIBILITY_TIMEOUT_MS`: when a failed turn is retried.
    public var visibilityTimeoutMilliseconds: Int
    /// `AGENT_LEASE_TTL_MS`: how long a dead worker's partitions stay orphaned.
    public var leaseTTLMilliseconds: Int
    /// `AGENT_MAX_IN_FLIGHT`: inbound entries a worker takes from Redis at once; the rest of a backlog
    /// stays in the streams (lag), where autoscaling sees it.
    public var maxInFlight: Int
    /// `AGENT_MAX_CONCURRENT_TURNS`: turns a worker runs at once.
    public var maxConcurrentTurns: Int
    /// `AGENT_HANDOVER_DRAIN_MS`: how long the turns of a partition handed to another worker may
    /// run on before they are abandoned (to be redone by the new owner).
    public var handoverDrainMilliseconds: Int
    /// `TAC_HISTORY_LIMIT`: how many earlier messages agents get as history.
    public var historyLimit: Int
    /// `TWILIO_MEMORY_*`: how much memory `retrieveMemory` returns.
    public var memory: MemoryConfiguration
    /// `CONVERSATION_INTELLIGENCE_CONFIGURATION_ID`: operator results of other configurations are skipped (nil: CI off).
    public var intelligenceConfigurationId: String?
    /// `CONVERSATION_INTELLIGENCE_SUMMARY_OPERATOR_SID`: the operator whose results become summaries.
    public var summaryOperatorSid: String?
    /// `CONVERSATION_INTELLIGENCE_OBSERVATION_OPERATOR_SID`: the operator whose results become observations.
    public var observationOperatorSid: String?
    /// `TWILIO_STUDIO_HANDOFF_FLOW_SID`: the Studio flow the handoff tool hands conversations to.
    public var studioHandoffFlowSid: String?
    /// The raw environment, for agents' own settings.
    public var environment: Environment

    /// Reads and validates the process environment.
    public static func fromEnvironment() throws -> TACConfiguration {
        try TACConfiguration(environment: .process())
    }

    public init(environment: Environment) throws {
        self.environment = environment
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        voicePublicDomain = PublicDomain.normalized(environment.string("TWILIO_VOICE_PUBLIC_DOMAIN"))
        let modes = MemoryMode.allCases.map(\.rawValue)
        let fallback = MemoryMode(rawValue: try environment.choice("TAC_MEMORY_MODE", default: "never", allowed: modes)) ?? .never
        var memoryModes: [ChannelKind: MemoryMode] = [:]
        for channel in ChannelKind.allCases {
            let name = "TAC_\(channel.rawValue.uppercased())_MEMORY_MODE"
            memoryModes[channel] = MemoryMode(rawValue: try environment.choice(name, default: fallback.rawValue, allowed: modes)) ?? fallback
        }
        self.memoryModes = memoryModes
        outboundURL = try environment.url("OUTBOUND_URL", default: "http://127.0.0.1:8083")
        outboundAPIToken = environment.string("OUTBOUND_API_TOKEN")
        maxDeliveries = try environment.int("AGENT_MAX_DELIVERIES", default: 5, range: 1...100)
        visibilityTimeoutMilliseconds = try environment.int("AGENT_VISIBILITY_TIMEOUT_MS", default: 15_000, range: 100...3_600_000)
        leaseTTLMilliseconds = try environment.int("AGENT_LEASE_TTL_MS", default: 10_000, range: 300...600_000)
        maxInFlight = try environment.int("AGENT_MAX_IN_FLIGHT", default: 256, range: 1...100_000)
        maxConcurrentTurns = try environment.int("AGENT_MAX_CONCURRENT_TURNS", default: 128, range: 1...100_000)
        handoverDrainMilliseconds = try environment.int("AGENT_HANDOVER_DRAIN_MS", default: 10_000, range: 0...3_600_000)
        historyLimit = try environment.int("TAC_HISTORY_LIMIT", default: 20, range: 0...500)
        let groups = environment.list("TWILIO_MEMORY_PROFILE_TRAIT_GROUPS")
        memory = MemoryConfiguration(
            observationsLimit: try environment.int("TWILIO_MEMORY_OBSERVATIONS_LIMIT", default: 20, range: 0...100),
            summariesLimit: try environment.int("TWILIO_MEMORY_SUMMARIES_LIMIT", default: 5, range: 0...100),
            communicationsLimit: try environment.int("TWILIO_MEMORY_COMMUNICATIONS_LIMIT", default: 0, range: 0...100),
            relevanceThreshold: try environment.double("TWILIO_MEMORY_RELEVANCE_THRESHOLD", default: 0, range: 0...1),
            traitGroups: groups.isEmpty ? nil : groups)
        intelligenceConfigurationId = environment.string("CONVERSATION_INTELLIGENCE_CONFIGURATION_ID")
        summaryOperatorSid = environment.string("CONVERSATION_INTELLIGENCE_SUMMARY_OPERATOR_SID")
        observationOperatorSid = environment.string("CONVERSATION_INTELLIGENCE_OBSERVATION_OPERATOR_SID")
        studioHandoffFlowSid = environment.string("TWILIO_STUDIO_HANDOFF_FLOW_SID")
    }
}
