// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

/// The author's library, its runtime and the built-in agents import only what their API needs in public.
let authorSettings: [SwiftSetting] =
    swiftSettings + [
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]

let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let hummingbirdWS = Target.Dependency.product(name: "HummingbirdWebSocket", package: "hummingbird-websocket")
let wsClient = Target.Dependency.product(name: "HummingbirdWSClient", package: "hummingbird-websocket")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioConcurrency = Target.Dependency.product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let nioSSL = Target.Dependency.product(name: "NIOSSL", package: "swift-nio-ssl")
let postgres = Target.Dependency.product(name: "PostgresNIO", package: "postgres-nio")
let httpClient = Target.Dependency.product(name: "AsyncHTTPClient", package: "async-http-client")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

/// What an example agent links: the author's library and its runtime (the AgentConnect product).
let exampleDeps: [Target.Dependency] = ["AgentConnect", "AgentConnectRuntime"]

let serviceDeps: [Target.Dependency] = [
    "AgentConnectCore", "EventBus", "Store", "ServiceSupport", "TwilioKit",
    hummingbird, lifecycle, logging, metrics, httpTypes,
]

/// The long-running services (and the benchmark that stands in for their hot path) allocate through
/// gperftools' tcmalloc on Linux instead of glibc's malloc: 11% fewer instructions per message on
/// the bus hot path (callgrind), and 18% less CPU per message at messaging's max rate (12–28% per
/// pair of alternating runs; README, Benchmark). `libgoogle-perftools-dev` to build (scripts/deps.sh
/// installs it); `libtcmalloc-minimal4` to run (Debian bookworm). The test bundle links the service
/// targets, so it allocates through tcmalloc too.
let serviceLinkerSettings: [LinkerSetting] = [.linkedLibrary("tcmalloc_minimal", .when(platforms: [.linux]))]

let package = Package(
    name: "agentconnect",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AgentConnect", targets: ["AgentConnect", "AgentConnectRuntime"]),
        .library(name: "AgentConnectTesting", targets: ["AgentConnectTesting"]),
        .executable(name: "voice-relay", targets: ["VoiceRelay"]),
        .executable(name: "messaging-ingress", targets: ["MessagingIngress"]),
        .executable(name: "outbound", targets: ["Outbound"]),
        .executable(name: "agent-worker", targets: ["AgentWorker"]),
        .executable(name: "migrate", targets: ["Migrate"]),
        .executable(name: "twilio-sim", targets: ["TwilioSim"]),
        .executable(name: "agentconnect-bench", targets: ["Bench"]),
        .executable(name: "agentconnect", targets: ["CLI"]),
        .executable(name: "example-sms-bot", targets: ["ExampleSMSBot"]),
        .executable(name: "example-voice-assistant", targets: ["ExampleVoiceAssistant"]),
        .executable(name: "example-channel-replies", targets: ["ExampleChannelReplies"]),
        .executable(name: "example-appointment-reminder", targets: ["ExampleAppointmentReminder"]),
        .executable(name: "example-memory-agent", targets: ["ExampleMemoryAgent"]),
        .executable(name: "example-call-control", targets: ["ExampleCallControl"]),
        .executable(name: "example-media-agent", targets: ["ExampleMediaAgent"]),
        .executable(name: "example-tool-agent", targets: ["ExampleToolAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // OpenTelemetry traces: OTLP over HTTP only (no gRPC stack in the build).
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.2"),
    ],
    targets: [
        // MARK: Shared modules
        .systemLibrary(
            name: "CHiredis", path: "Shared/CHiredis", pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]),
        .target(
            name: "AgentConnectCore", dependencies: [logging, nioConcurrency], path: "Shared/Core",
            swiftSettings: swiftSettings),
        .target(
            name: "EventBus",
            dependencies: ["AgentConnectCore", "CHiredis", nioCore, nioPosix, nioConcurrency, nioSSL, logging, metrics, lifecycle],
            path: "Shared/EventBus", swiftSettings: swiftSettings),
        .target(
            name: "Store", dependencies: ["AgentConnectCore", postgres, nioSSL, logging, lifecycle, nioConcurrency],
            path: "Shared/Store", swiftSettings: swiftSettings),
        .target(
            name: "TwilioKit",
            dependencies: [
                "AgentConnectCore", httpClient, crypto, logging, metrics, nioCore, nioPosix, nioSSL, nioConcurrency,
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Shared/TwilioKit", swiftSettings: swiftSettings),
        .target(
            name: "ServiceSupport",
            dependencies: [
                "AgentConnectCore", "EventBus", "Store", "TwilioKit", hummingbird, lifecycle, logging, metrics, httpTypes, httpClient, postgres,
                nioCore, nioPosix,
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "OTel", package: "swift-otel"), .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Shared/ServiceSupport", swiftSettings: swiftSettings),
        // The agent author's face: no Hummingbird, PostgreSQL, bus or Twilio client here.
        .target(
            name: "AgentConnect", dependencies: ["AgentConnectCore", logging, nioConcurrency],
            path: "Shared/AgentConnect", swiftSettings: authorSettings),
        // The worker runtime behind it (`package` access), linked in by the AgentConnect product.
        .target(
            name: "AgentConnectRuntime",
            dependencies: serviceDeps + [
                "AgentConnect", httpClient, postgres, nioCore, nioConcurrency, .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationEssentialsCompat", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Shared/AgentConnectRuntime", swiftSettings: authorSettings),
        // The built-in agents (`echo`, `openai`) and the OpenAI client, run by agent-worker.
        .target(
            name: "AgentConnectAgents",
            dependencies: [
                "AgentConnect", "AgentConnectRuntime", "AgentConnectCore", "Store", httpClient, logging, nioCore, nioConcurrency,
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOFoundationEssentialsCompat", package: "swift-nio"),
            ],
            path: "Services/AgentWorker/Agents", swiftSettings: authorSettings),
        .target(
            name: "AgentConnectTesting",
            dependencies: [
                "AgentConnectCore", "EventBus", "Store", httpClient, postgres, logging, nioConcurrency,
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Shared/AgentConnectTesting", swiftSettings: swiftSettings),

        .executableTarget(
            name: "CLI",
            dependencies: [
                "AgentConnectCore", "EventBus", "Store", "TwilioKit", "ServiceSupport", "AgentConnect", "AgentConnectRuntime", "AgentConnectAgents",
                httpClient, argumentParser, postgres, logging,
            ],
            path: "Services/CLI", exclude: ["README.md"], swiftSettings: swiftSettings),

        // MARK: Examples (the seeds' snippets as agent workers)
        .executableTarget(name: "ExampleSMSBot", dependencies: exampleDeps, path: "Examples/SMSBot", swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleVoiceAssistant", dependencies: exampleDeps, path: "Examples/VoiceAssistant", swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleChannelReplies", dependencies: exampleDeps, path: "Examples/ChannelReplies", swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleAppointmentReminder", dependencies: exampleDeps, path: "Examples/AppointmentReminder",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleMemoryAgent", dependencies: exampleDeps, path: "Examples/MemoryAgent", swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleCallControl", dependencies: exampleDeps, path: "Examples/CallControl", swiftSettings: swiftSettings),
        .executableTarget(name: "ExampleMediaAgent", dependencies: exampleDeps, path: "Examples/MediaAgent", swiftSettings: swiftSettings),
        .executableTarget(
            name: "ExampleToolAgent", dependencies: exampleDeps + ["AgentConnectAgents"], path: "Examples/ToolAgent", swiftSettings: swiftSettings),

        // MARK: Services
        .executableTarget(
            name: "VoiceRelay", dependencies: serviceDeps + [hummingbirdWS, nioCore, nioPosix, .product(name: "NIOWebSocket", package: "swift-nio")],
            path: "Services/VoiceRelay", exclude: ["README.md"], swiftSettings: swiftSettings, linkerSettings: serviceLinkerSettings),
        .executableTarget(
            name: "MessagingIngress", dependencies: serviceDeps,
            path: "Services/MessagingIngress", exclude: ["README.md"], swiftSettings: swiftSettings, linkerSettings: serviceLinkerSettings),
        .executableTarget(
            name: "Outbound", dependencies: serviceDeps + [httpClient, crypto],
            path: "Services/Outbound", exclude: ["README.md"], swiftSettings: swiftSettings, linkerSettings: serviceLinkerSettings),
        .executableTarget(
            name: "AgentWorker", dependencies: ["AgentConnect", "AgentConnectRuntime", "AgentConnectAgents", "ServiceSupport"],
            path: "Services/AgentWorker/Main", swiftSettings: authorSettings, linkerSettings: serviceLinkerSettings),
        .executableTarget(
            name: "Migrate", dependencies: ["Store", "AgentConnectCore", logging],
            path: "Services/Migrate", exclude: ["README.md"], swiftSettings: swiftSettings),

        // MARK: Dev tools (DevTools/: development and tests only, never deployed)
        .target(
            name: "RelayCaller",
            dependencies: [
                "AgentConnectCore", "TwilioKit", wsClient, httpClient, httpTypes, logging, nioPosix,
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "DevTools/RelayCaller", swiftSettings: swiftSettings),
        .executableTarget(
            name: "TwilioSim",
            dependencies: serviceDeps + [
                hummingbirdWS, wsClient, httpClient, argumentParser, "RelayCaller", .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "DevTools/TwilioSim", exclude: ["README.md"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "Bench",
            dependencies: serviceDeps + [
                hummingbirdWS, wsClient, httpClient, argumentParser, "RelayCaller", .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "DevTools/Bench", swiftSettings: swiftSettings, linkerSettings: serviceLinkerSettings),

        // MARK: Tests
        .testTarget(
            name: "CoreTests",
            dependencies: [
                "AgentConnectCore", "TwilioKit", "EventBus", "Store", "ServiceSupport", "AgentConnect", "AgentConnectRuntime", "AgentConnectAgents",
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/CoreTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "VoiceRelayTests",
            dependencies: serviceDeps + [
                "VoiceRelay", .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "NIOEmbedded", package: "swift-nio"),
                nioPosix,
            ],
            path: "Tests/VoiceRelayTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "MessagingIngressTests",
            dependencies: serviceDeps + ["MessagingIngress", .product(name: "HummingbirdTesting", package: "hummingbird")],
            path: "Tests/MessagingIngressTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "OutboundTests",
            dependencies: serviceDeps + ["Outbound", httpClient, .product(name: "HummingbirdTesting", package: "hummingbird")],
            path: "Tests/OutboundTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "AgentWorkerTests",
            dependencies: [
                "AgentConnect", "AgentConnectRuntime", "AgentConnectCore", "EventBus", "Store", lifecycle, logging, nioConcurrency,
            ],
            path: "Tests/AgentWorkerTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "IntegrationTests",
            dependencies: serviceDeps + [
                httpClient, wsClient, postgres, .product(name: "NIOHTTP1", package: "swift-nio"), nioPosix, nioSSL, "RelayCaller",
                "AgentConnectTesting",
                "VoiceRelay",
            ],
            path: "Tests/IntegrationTests", swiftSettings: swiftSettings),
    ]
)
