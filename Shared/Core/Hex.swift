/// Lowercase hexadecimal, written digit by digit: `String(format: "%02x")` per byte cost a fifth of
/// messaging-ingress's CPU, and `UUID.uuidString` goes through `snprintf`.
package enum Hex {
    /// The digits, `0`–`9` then `a`–`f`.
    package static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `bytes` as lowercase hex, two digits a byte.
    package static func lowercase(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var index = 0
            for byte in bytes {
                out[index] = digits[Int(byte >> 4)]
                out[index + 1] = digits[Int(byte & 0x0f)]
                index += 2
            }
            return index
        }
    }
}
