/// Work that must finish even when the turn around it is cancelled (history writes after a reply).
package enum Uncancellable {
    /// Runs `body` in a task that does not inherit the caller's cancellation, and waits for it.
    package static func run(_ body: @escaping @Sendable () async -> Void) async {
        await Task { await body() }.value
    }
}
