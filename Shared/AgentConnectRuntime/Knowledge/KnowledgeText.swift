import Foundation

/// Turns files into text and text into chunks for the knowledge base.
package enum KnowledgeText {
    /// The file kinds ``extract(path:)`` reads, by extension.
    package static let supportedExtensions = ["txt", "text", "md", "markdown", "html", "htm", "pdf"]

    /// The title and text of a file: plain text and Markdown as they are, HTML without its markup
    /// (scripts and styles dropped, entities decoded), PDF from the text operators of its content
    /// streams (`FlateDecode` inflated; scanned PDFs have none).
    package static func extract(path: String) throws -> (title: String, text: String) {
        let url = URL(fileURLWithPath: path)
        let name = url.deletingPathExtension().lastPathComponent
        let data = try Data(contentsOf: url)
        switch url.pathExtension.lowercased() {
        case "txt", "text":
            return (name, String(decoding: data, as: UTF8.self))
        case "md", "markdown":
            let text = String(decoding: data, as: UTF8.self)
            let heading = text.split(separator: "\n").first { $0.hasPrefix("# ") }.map {
                String($0.dropFirst(2)).trimmingCharacters(in: .whitespaces)
            }
            return (heading ?? name, text)
        case "html", "htm":
            return html(String(decoding: data, as: UTF8.self), fallbackTitle: name)
        case "pdf":
            let text = pdf(data)
            guard !text.allSatisfy(\.isWhitespace) else {
                throw KnowledgeError(
                    "\(path): no readable text (a scanned PDF, or fonts without a text encoding): convert it to text first, e.g. with pdftotext")
            }
            return (name, text)
        default:
            throw KnowledgeError("\(path): unsupported file type (supported: \(supportedExtensions.joined(separator: ", ")))")
        }
    }

    /// HTML to text: block elements become line breaks, tags go, entities are decoded.
    static func html(_ source: String, fallbackTitle: String) -> (title: String, text: String) {
        var text = source
        let title = firstMatch(#"<title[^>]*>(.*?)</title>"#, in: text) ?? firstMatch(#"<h1[^>]*>(.*?)</h1>"#, in: text)
        for pattern in [#"(?is)<(script|style|head)[^>]*>.*?</\1>"#, #"(?s)<!--.*?-->"#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        text = text.replacingOccurrences(of: #"(?i)<(br|/p|/div|/li|/tr|/h[1-6]|/section|/article)[^>]*>"#, with: "\n\n", options: .regularExpression)
        text = text.replacingOccurrences(of: #"(?i)<h[1-6][^>]*>"#, with: "\n\n# ", options: .regularExpression)
        text = text.replacingOccurrences(of: #"<[^>]+>"#, with: " ", options: .regularExpression)
        text = decodeEntities(text)
        text = text.replacingOccurrences(of: #"[ \t]+"#, with: " ", options: .regularExpression)
        let cleanTitle = title.map { decodeEntities($0.replacingOccurrences(of: #"<[^>]+>"#, with: "", options: .regularExpression)) }
        return ((cleanTitle?.trimmingCharacters(in: .whitespacesAndNewlines)).flatMap { $0.isEmpty ? nil : $0 } ?? fallbackTitle, text)
    }

    private static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive, .dotMatchesLineSeparators]),
            let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), match.numberOfRanges > 1,
            let range = Range(match.range(at: 1), in: text)
        else { return nil }
        return String(text[range])
    }

    static func decodeEntities(_ text: String) -> String {
        var result = text
        for (entity, value) in [
            ("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'"), ("&rsquo;", "'"), ("&mdash;", "—"),
            ("&ndash;", "–"),
        ] {
            result = result.replacingOccurrences(of: entity, with: value)
        }
        if let regex = try? NSRegularExpression(pattern: "&#(x?)([0-9a-fA-F]+);") {
            for match in regex.matches(in: result, range: NSRange(result.startIndex..., in: result)).reversed() {
                guard let whole = Range(match.range, in: result), let hex = Range(match.range(at: 1), in: result),
                    let digits = Range(match.range(at: 2), in: result),
                    let code = UInt32(result[digits], radix: result[hex].isEmpty ? 10 : 16), let scalar = Unicode.Scalar(code)
                else { continue }
                result.replaceSubrange(whole, with: String(Character(scalar)))
            }
        }
        return result.replacingOccurrences(of: "&amp;", with: "&")
    }

    /// The text a PDF shows: its content streams (`FlateDecode` ones inflated), then the strings of
    /// their `Tj`, `'`, `"` and `TJ` operators; `Td`/`TD`/`T*`/`ET` start new lines. Fonts with
    /// custom encodings (CID fonts without a ToUnicode map) are not decoded.
    static func pdf(_ data: Data) -> String {
        pdfText(pdfStreams([UInt8](data)))
    }

    /// The file's streams, concatenated; compressed ones inflated (the whole file when it has none).
    static func pdfStreams(_ bytes: [UInt8]) -> [UInt8] {
        let keyword = Array("stream".utf8)
        let end = Array("endstream".utf8)
        var content: [UInt8] = []
        var found = false
        var index = 0
        while let start = find(keyword, in: bytes, from: index) {
            index = start + keyword.count
            guard start < 3 || bytes[(start - 3)..<start] != ArraySlice("end".utf8) else { continue }
            var dataStart = start + keyword.count
            if dataStart < bytes.count, bytes[dataStart] == 13 { dataStart += 1 }
            guard dataStart < bytes.count, bytes[dataStart] == 10 else { continue }
            dataStart += 1
            guard let dataEnd = find(end, in: bytes, from: dataStart) else { break }
            let headerStart = max(0, start - 400)
            let header = String(decoding: bytes[headerStart..<start], as: UTF8.self)
            let dictionary = header.components(separatedBy: "obj").last ?? header
            var body = Array(bytes[dataStart..<dataEnd])
            while let last = body.last, last == 10 || last == 13 { body.removeLast() }
            found = true
            if dictionary.contains("/FlateDecode") {
                if let inflated = Inflate.decompress(body) { content += inflated + [10] }
            } else if !dictionary.contains("/Filter") {
                content += body + [10]
            }
            index = dataEnd + end.count
        }
        return found ? content : bytes
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    static func pdfText(_ bytes: [UInt8]) -> String {
        var output = ""
        var index = 0
        var line = ""
        func flush() {
            if !line.allSatisfy(\.isWhitespace) { output += line.trimmingCharacters(in: .whitespaces) + "\n" }
            line = ""
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "(") {
                var depth = 1
                var string: [UInt8] = []
                index += 1
                while index < bytes.count, depth > 0 {
                    let current = bytes[index]
                    if current == UInt8(ascii: "\\"), index + 1 < bytes.count {
                        let next = bytes[index + 1]
                        switch next {
                        case UInt8(ascii: "n"): string.append(10)
                        case UInt8(ascii: "t"): string.append(9)
                        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"): string.append(next)
                        default: break
                        }
                        index += 2
                        continue
                    }
                    if current == UInt8(ascii: "(") { depth += 1 }
                    if current == UInt8(ascii: ")") {
                        depth -= 1
                        if depth == 0 { break }
                    }
                    string.append(current)
                    index += 1
                }
                line += String(decoding: string, as: UTF8.self)
                index += 1
                continue
            }
            if byte == UInt8(ascii: "T"), index + 1 < bytes.count,
                [UInt8(ascii: "d"), UInt8(ascii: "D"), UInt8(ascii: "*")].contains(bytes[index + 1])
            {
                flush()
            } else if byte == UInt8(ascii: "E"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "T") {
                flush()
            } else if byte == UInt8(ascii: "-"), let before = bytes[..<index].lastIndex(where: { $0 != UInt8(ascii: " ") }),
                bytes[before] == UInt8(ascii: ")")
            {
                // A kerning adjustment inside TJ: large negative numbers are word gaps.
                line += " "
            }
            index += 1
        }
        flush()
        return output
    }

    /// Chunks of at most about `maxCharacters`: paragraphs packed together, a long paragraph cut at
    /// sentence ends; each chunk starts with the Markdown heading of its section, so it stands alone.
    package static func chunks(_ text: String, maxCharacters: Int = 800) -> [String] {
        var chunks: [String] = []
        var heading: String?
        var current = ""
        func flush() {
            let body = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !body.isEmpty { chunks.append(heading.map { "\($0)\n\(body)" } ?? body) }
            current = ""
        }
        let paragraphs = text.replacingOccurrences(of: "\r\n", with: "\n")
            .components(separatedBy: "\n\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        for paragraph in paragraphs {
            var rest = paragraph
            if paragraph.hasPrefix("#") {
                flush()
                let lines = paragraph.split(separator: "\n", maxSplits: 1)
                heading = lines.first.map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "# ")) }
                rest = lines.count > 1 ? String(lines[1]) : ""
                if rest.isEmpty { continue }
            }
            for piece in sentences(rest, maxCharacters: maxCharacters) {
                if current.count + piece.count + 2 > maxCharacters { flush() }
                current += (current.isEmpty ? "" : "\n\n") + piece
            }
        }
        flush()
        return chunks
    }

    /// A paragraph cut into pieces of at most `maxCharacters` at sentence ends (hard cuts for a sentence longer than that).
    private static func sentences(_ paragraph: String, maxCharacters: Int) -> [String] {
        guard paragraph.count > maxCharacters else { return [paragraph] }
        var pieces: [String] = []
        var current = ""
        var sentences: [String] = []
        var sentence = ""
        for character in paragraph {
            sentence.append(character)
            if ".!?".contains(character) {
                sentences.append(sentence)
                sentence = ""
            }
        }
        if !sentence.isEmpty { sentences.append(sentence) }
        for var sentence in sentences {
            while sentence.count > maxCharacters {
                pieces.append(String(sentence.prefix(maxCharacters)))
                sentence = String(sentence.dropFirst(maxCharacters))
            }
            if current.count + sentence.count > maxCharacters {
                pieces.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            }
            current += sentence
        }
        if !current.allSatisfy(\.isWhitespace) { pieces.append(current.trimmingCharacters(in: .whitespaces)) }
        return pieces
    }
}

/// A knowledge base failure, with the reason.
package struct KnowledgeError: Error, CustomStringConvertible, Sendable {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}
