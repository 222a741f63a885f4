import ServiceLifecycle

/// Work the sim does after answering a request (Twilio answers a call or reports a message's
/// progress later): jobs queued by a route, each run concurrently until the service group shuts down.
struct BackgroundJobs<Job: Sendable>: Sendable {
    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    init() {
        (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Queues a job.
    func enqueue(_ job: Job) {
        continuation.yield(job)
    }

    /// Runs `handle` for every queued job, concurrently, until graceful shutdown cancels them.
    func run(_ handle: @escaping @Sendable (Job) async -> Void) async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for await job in jobs {
                    group.addTask { await handle(job) }
                }
                group.cancelAll()
            }
        }
    }
}
