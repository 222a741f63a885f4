/// Splits a long reply into messages that each fit a channel's limit, on sentence boundaries.
///
/// Sentences (ending in `.`, `!`, `?` or `…` followed by white space, or a line break) are packed
/// into parts of at most `limit` UTF-16 code units; a sentence longer than a part is split between
/// words, and a word longer than a part is cut. Parts keep their order; no text is lost apart from
/// the white space between two parts.
package enum MessageSplitter {
    /// `text` as ordered parts of at most `limit` UTF-16 code units (one part when it fits).
    package static func split(_ text: String, limit: Int) -> [String] {
        precondition(limit > 0, "limit must be positive")
        guard text.utf16.count > limit else { return [text] }
        var parts: [String] = []
        var current = ""
        func flush() {
            let trimmed = current.trimmingTrailingWhitespace()
            if !trimmed.isEmpty { parts.append(trimmed) }
            current = ""
        }
        for sentence in sentences(text) {
            if (current + sentence).trimmingTrailingWhitespace().utf16.count <= limit {
                current += sentence
                continue
            }
            flush()
            let piece = sentence.trimmingLeadingWhitespace()
            if piece.utf16.count <= limit {
                current = piece
                continue
            }
            for word in words(piece) {
                if (current + word).trimmingTrailingWhitespace().utf16.count <= limit {
                    current += word
                    continue
                }
                flush()
                var rest = Substring(word.trimmingLeadingWhitespace())
                while rest.utf16.count > limit {
                    let cut = prefix(rest, utf16Limit: limit)
                    parts.append(String(cut))
                    rest = rest[cut.endIndex...]
                }
                current = String(rest)
            }
        }
        flush()
        return parts
    }

    /// Sentences with the white space that follows each.
    static func sentences(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var ended = false
        for character in text {
            if ended && !character.isWhitespace {
                result.append(current)
                current = ""
                ended = false
            }
            current.append(character)
            if character.isNewline {
                ended = true
            } else if ".!?…".contains(character) {
                ended = true
            } else if !character.isWhitespace && !"\"')]»”’".contains(character) {
                ended = false
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// Words with the white space that follows each.
    static func words(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        var inSpace = false
        for character in text {
            if inSpace && !character.isWhitespace {
                result.append(current)
                current = ""
                inSpace = false
            }
            if character.isWhitespace { inSpace = true }
            current.append(character)
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// The longest prefix of whole characters within `utf16Limit` code units (at least one character).
    static func prefix(_ text: Substring, utf16Limit: Int) -> Substring {
        var count = 0
        var end = text.startIndex
        for index in text.indices {
            let width = text[index].utf16.count
            if count + width > utf16Limit { break }
            count += width
            end = text.index(after: index)
        }
        return end == text.startIndex ? text.prefix(1) : text[..<end]
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var copy = self
        while let last = copy.last, last.isWhitespace { copy.removeLast() }
        return copy
    }

    func trimmingLeadingWhitespace() -> String {
        String(drop { $0.isWhitespace })
    }
}
