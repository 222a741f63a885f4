/// One chunk of a knowledge document, as search returns it.
public struct KnowledgeChunk: Sendable, Equatable, Codable {
    public var id: String
    /// The document's source (the path it was added from).
    public var source: String
    public var title: String
    public var content: String
    /// Relevance in 0…1: full-text rank, blended with cosine similarity when embeddings are used.
    public var score: Double

    public init(id: String, source: String, title: String, content: String, score: Double) {
        self.id = id
        self.source = source
        self.title = title
        self.content = content
        self.score = score
    }
}
