import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Swift's global executor served by SwiftNIO's event loops, each job run as the *generic* executor.
///
/// SwiftNIO's own takeover (`NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor`)
/// runs each job isolated to the event loop's serial executor. A task resumed that way is then not
/// on the generic executor, so the next nonisolated async function it enters or returns to (a hop to
/// the generic executor, `swift_task_switch`) cannot go on in place: the task is enqueued again and
/// goes round the event loop's queue a second time. `perf` on agent-worker at 1,000 messages/s put
/// 8.7% of its CPU in that second enqueue alone. Here a job runs as Swift's default global executor
/// runs one (`swift_job_run` with the generic executor), so those hops go on in place; it is still
/// queued on the current event loop (any of the group's, off a loop), so a task resumed by an answer
/// runs on the thread that read it, as with SwiftNIO's takeover.
///
/// Delayed jobs (`Task.sleep`) and the main actor keep Swift's own executors, as with SwiftNIO's.
package enum EventLoopGlobalExecutor {
    private typealias EnqueueGlobalHook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void

    /// The generic executor: no identity, no implementation. (Never held in an `Optional`: its
    /// all-zero bits are the optional's `nil`.)
    private static var generic: UnownedSerialExecutor {
        unsafeBitCast((UInt(0), UInt(0)), to: UnownedSerialExecutor.self)
    }

    /// Makes ``MultiThreadedEventLoopGroup/singleton`` Swift's global executor; false (nothing
    /// changed) when the runtime has no such hook, another hook is set, or the executor types are not
    /// laid out as this relies on. Once per process, from the main thread, before anything is
    /// enqueued on the global executor (SwiftNIO's takeover has the same rules).
    package static func install() -> Bool {
        // The runtime's hook and its signature as of Swift 6.3 (SwiftNIO bounds its takeover alike).
        #if os(Linux) && compiler(<6.6)
        guard MemoryLayout<UnownedSerialExecutor>.size == 2 * MemoryLayout<UInt>.size,
            MemoryLayout<EnqueueGlobalHook>.size == MemoryLayout<UnsafeRawPointer>.size,
            let slot = runtimeSymbol("swift_task_enqueueGlobal_hook")?.assumingMemoryBound(to: UnsafeRawPointer?.self),
            slot.pointee == nil
        else { return false }
        let hook: EnqueueGlobalHook = { job, _ in
            let executor = EventLoopGlobalExecutor.generic
            MultiThreadedEventLoopGroup.singleton.any().execute { job.runSynchronously(on: executor) }
        }
        slot.pointee = unsafeBitCast(hook, to: UnsafeRawPointer.self)
        return true
        #else
        return false
        #endif
    }

    /// Runs Swift's tasks and SwiftNIO's I/O on `threads` event loops (``MultiThreadedEventLoopGroup/singleton``),
    /// with this hook; SwiftNIO's own takeover only where the hook is not built (outside Linux), as
    /// there it is the only way to have them on the loops. Same rules as ``install()``.
    static func runTasks(onEventLoops threads: Int) {
        NIOSingletons.groupLoopCountSuggestion = threads
        if !install() {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
    }

    /// Where a task started now runs: on one of SwiftNIO's event loops or not, and as the generic
    /// executor or not (what a service logs at debug level, and its tests check); `generic` nil when
    /// the runtime does not say.
    package static func probe() async -> (onEventLoop: Bool, generic: Bool?) {
        await Task.detached {
            let executor = currentExecutor().map { unsafeBitCast($0(), to: (UInt, UInt).self) }
            return (MultiThreadedEventLoopGroup.currentEventLoop != nil, executor.map { $0 == (0, 0) })
        }.value
    }

    private typealias CurrentExecutor = @convention(thin) () -> UnownedSerialExecutor

    /// The runtime's `swift_task_getCurrentExecutor`: the executor the running job was started on.
    private static func currentExecutor() -> CurrentExecutor? {
        #if os(Linux) && compiler(<6.6)
        guard MemoryLayout<CurrentExecutor>.size == MemoryLayout<UnsafeRawPointer>.size,
            let symbol = runtimeSymbol("swift_task_getCurrentExecutor")
        else { return nil }
        return unsafeBitCast(symbol, to: CurrentExecutor.self)
        #else
        return nil
        #endif
    }

    /// A symbol of the Swift runtime linked into this process.
    private static func runtimeSymbol(_ name: String) -> UnsafeMutableRawPointer? {
        dlsym(dlopen(nil, RTLD_NOW), name)
    }
}
