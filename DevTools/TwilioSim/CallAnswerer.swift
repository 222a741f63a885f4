import AgentConnectCore
import Logging
import ServiceLifecycle

/// Answers calls created through the sim's Calls API in the background (Twilio answers them after
/// the API call returns), owned by the sim's service group.
struct CallAnswerer: Service {
    struct Job: Sendable {
        var sid: String
        var from: String
        var to: String
        var twiml: String
    }

    let voice: VoiceRoutes
    let queue = BackgroundJobs<Job>()
    /// What the answered "customer" says.
    let script: [String]

    init(voice: VoiceRoutes, script: [String] = ["hello"]) {
        self.voice = voice
        self.script = script
    }

    /// Queues a call to answer.
    func enqueue(_ job: Job) {
        queue.enqueue(job)
    }

    func run() async throws {
        await queue.run { job in await voice.answer(sid: job.sid, from: job.from, to: job.to, twiml: job.twiml, script: script) }
    }
}
