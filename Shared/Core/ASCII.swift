/// ASCII case folding on bytes, for the protocol text that is case-insensitive by its spec (media
/// types, URL schemes, host names, hex digits) and is read on every request: nothing allocated, no
/// Unicode rules.
package enum ASCII {
    /// `byte` with an ASCII upper-case letter folded to lower case; every other byte as it is.
    package static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// Whether `text` starts with `prefix` (lower case), in any case.
    package static func hasPrefix(_ text: Substring.UTF8View, lowercased prefix: String.UTF8View) -> Bool {
        text.count >= prefix.count && zip(text, prefix).allSatisfy { lowercased($0) == $1 }
    }

    /// Whether `text` contains `needle` (lower case), in any case.
    package static func contains(_ text: String.UTF8View, lowercased needle: String.UTF8View) -> Bool {
        var start = text.startIndex
        while text.distance(from: start, to: text.endIndex) >= needle.count {
            if hasPrefix(text[start...], lowercased: needle) { return true }
            start = text.index(after: start)
        }
        return false
    }
}
