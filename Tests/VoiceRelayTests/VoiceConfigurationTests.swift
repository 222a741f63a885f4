import AgentConnectCore
import Testing

@testable import VoiceRelay

/// ``VoiceConfiguration``: the settings the frame gate takes.
@Suite("Voice configuration")
struct VoiceConfigurationTests {
    let required = ["TWILIO_AUTH_TOKEN": "configuration-test-token", "TWILIO_VOICE_PUBLIC_DOMAIN": "relay.example.com"]

    @Test("VOICE_GENERATION_TAKEOVER_MS is 3 s unless set, and a value out of range is refused")
    func generationTakeover() throws {
        #expect(try VoiceConfiguration(environment: Environment(required)).generationTakeover == .seconds(3))
        let set = required.merging(["VOICE_GENERATION_TAKEOVER_MS": "250"]) { _, new in new }
        #expect(try VoiceConfiguration(environment: Environment(set)).generationTakeover == .milliseconds(250))
        let zero = required.merging(["VOICE_GENERATION_TAKEOVER_MS": "0"]) { _, new in new }
        #expect(throws: ConfigurationError.self) { try VoiceConfiguration(environment: Environment(zero)) }
    }
}
