import AgentConnectCore
import Foundation
import ServiceSupport
import TwilioKit

/// voice-relay settings (each documented in .env.example), validated at start-up.
struct VoiceConfiguration: Sendable {
    var common: CommonConfiguration
    var authToken: String
    var accountSid: String?
    /// `TWILIO_VOICE_PUBLIC_DOMAIN`: host in the TwiML URLs and in signature checks.
    var publicDomain: String
    var conversationConfigurationId: String?
    var senders: Senders
    /// `CONVERSATION_RELAY_*`: the `<ConversationRelay>` attributes, `<Language>`s and `<Parameter>`s
    /// every call gets unless the per-call TwiML hook says otherwise (``ConversationRelaySettings``).
    var relay: ConversationRelaySettings
    /// `VOICE_HANDOFF_TO`: where a voice handoff goes (``HandoffDestination``): `studio` (the default
    /// when `TWILIO_STUDIO_HANDOFF_FLOW_SID` is set), `+1…`, `sip:…`, `workflow:WW…`, `queue:<name>`.
    var handoff: HandoffDestination?
    /// `VOICE_PROMPT_INTERRUPTS_REPLY`: whether a prompt that arrives while a reply is streaming cuts
    /// that reply (false: only ConversationRelay's `interrupt` does; the prompt is answered after it).
    var promptInterruptsReply: Bool
    /// `VOICE_TWIML_HOOK_TIMEOUT_MS`: how long `/twiml` waits for the agent's per-call TwiML hook
    /// before answering with the environment's settings.
    var twimlHookTimeoutMilliseconds: Int
    /// `VOICE_DRAIN_SECONDS`: how long live calls may continue after SIGTERM.
    var drainSeconds: Int
    /// `VOICE_MAX_FRAME_BYTES`: larger inbound frames close the socket (1009).
    var maxFrameBytes: Int
    /// `VOICE_SETUP_TIMEOUT_MS`: a socket that sends no `setup` in time is closed.
    var setupTimeoutMilliseconds: Int
    /// `VOICE_TOKEN_TTL_SECONDS`: how long a per-call socket token minted by `/twiml` stays usable.
    var tokenTTLSeconds: Int
    /// `VOICE_IDLE_TIMEOUT_SECONDS`: a call socket on which the caller's side sent nothing for this long
    /// is closed (ConversationRelay sends frames only when something happens; 0 = never).
    var idleTimeoutSeconds: Int
    /// `VOICE_MAX_SOCKETS`: sockets one relay holds at most; more are closed at once (1013, try again later).
    var maxSockets: Int
    /// `VOICE_RELAY_LIVENESS_TTL_MS`: a relay whose heartbeat is older than this is dead and its calls
    /// are ended by its peers (long enough to ride out a GC pause, a stalled disk or a `SIGSTOP`).
    var livenessTTLMilliseconds: Int
    /// `VOICE_GENERATION_TAKEOVER_MS`: how long a turn's generation (the worker producing it) may be
    /// silent without finishing before a later generation's held frames take the turn over
    /// (``VoiceTurnGate``). A partition's next owner starts only after the previous owner's lease
    /// lapsed (`AGENT_LEASE_TTL_MS`), so in practice the silent one was fenced or died.
    var generationTakeover: Duration
    /// `HTTP_IDLE_TIMEOUT_SECONDS`: idle and slow HTTP connections are closed.
    var httpLimits: HTTPServerLimits
    /// REST access for the orchestrated-mode conversation lookup (nil in relay-only mode).
    var twilio: TwilioAPIConfiguration?

    init(environment: Environment) throws {
        common = try CommonConfiguration(environment: environment, defaultPort: 8081)
        authToken = try environment.required("TWILIO_AUTH_TOKEN")
        try DevCredentials.refuseWithRealTwilio(environment)
        accountSid = environment.string("TWILIO_ACCOUNT_SID")
        guard let domain = PublicDomain.normalized(try environment.required("TWILIO_VOICE_PUBLIC_DOMAIN")) else {
            throw ConfigurationError(variable: "TWILIO_VOICE_PUBLIC_DOMAIN", reason: "must be a host name")
        }
        publicDomain = domain
        conversationConfigurationId = environment.string("TWILIO_CONVERSATION_CONFIGURATION_ID")
        senders = try Senders(environment: environment)
        relay = try ConversationRelaySettings(environment: environment)
        handoff = try HandoffDestination.parse(
            environment.string("VOICE_HANDOFF_TO"), accountSid: accountSid, studioFlowSid: environment.string("TWILIO_STUDIO_HANDOFF_FLOW_SID"))
        promptInterruptsReply = try environment.bool("VOICE_PROMPT_INTERRUPTS_REPLY", default: false)
        twimlHookTimeoutMilliseconds = try environment.int("VOICE_TWIML_HOOK_TIMEOUT_MS", default: 1500, range: 50...10_000)
        drainSeconds = try environment.int("VOICE_DRAIN_SECONDS", default: 30, range: 0...3600)
        maxFrameBytes = try environment.int("VOICE_MAX_FRAME_BYTES", default: 64 << 10, range: 1024...(16 << 20))
        setupTimeoutMilliseconds = try environment.int("VOICE_SETUP_TIMEOUT_MS", default: 10_000, range: 100...600_000)
        tokenTTLSeconds = try environment.int("VOICE_TOKEN_TTL_SECONDS", default: RelayCallTokens.defaultTTLSeconds, range: 10...86_400)
        idleTimeoutSeconds = try environment.int("VOICE_IDLE_TIMEOUT_SECONDS", default: 1800, range: 0...86_400)
        maxSockets = try environment.int("VOICE_MAX_SOCKETS", default: 20_000, range: 1...1_000_000)
        livenessTTLMilliseconds = try environment.int("VOICE_RELAY_LIVENESS_TTL_MS", default: 15_000, range: 2_000...600_000)
        generationTakeover = .milliseconds(try environment.int("VOICE_GENERATION_TAKEOVER_MS", default: 3000, range: 10...600_000))
        httpLimits = try HTTPServerLimits(environment: environment)
        twilio = conversationConfigurationId == nil ? nil : try TwilioAPIConfiguration(environment: environment)
    }
}
