/// DEFLATE decompression (RFC 1951; zlib's RFC 1950 wrapper skipped), for PDF `FlateDecode`
/// streams: stored, fixed-Huffman and dynamic-Huffman blocks.
enum Inflate {
    struct Failure: Error {}

    /// The inflated bytes of a zlib stream (or a raw DEFLATE stream when `zlib` is false); nil when corrupt.
    static func decompress(_ input: [UInt8], zlib: Bool = true, limit: Int = 64 << 20) -> [UInt8]? {
        var reader = BitReader(bytes: input, position: zlib ? 2 : 0)
        var output: [UInt8] = []
        do {
            var last = false
            while !last {
                last = try reader.bits(1) == 1
                switch try reader.bits(2) {
                case 0:
                    reader.alignToByte()
                    let length = try reader.bits(16)
                    _ = try reader.bits(16)
                    for _ in 0..<length { output.append(UInt8(try reader.bits(8))) }
                case 1:
                    try inflateBlock(&reader, &output, literal: fixedLiteral, distance: fixedDistance, limit: limit)
                case 2:
                    let (literal, distance) = try dynamicTables(&reader)
                    try inflateBlock(&reader, &output, literal: literal, distance: distance, limit: limit)
                default:
                    return nil
                }
            }
        } catch {
            return output.isEmpty ? nil : output
        }
        return output
    }

    struct BitReader {
        let bytes: [UInt8]
        var position: Int
        var bitBuffer = 0
        var bitCount = 0

        init(bytes: [UInt8], position: Int) {
            self.bytes = bytes
            self.position = position
        }

        mutating func bits(_ count: Int) throws -> Int {
            while bitCount < count {
                guard position < bytes.count else { throw Failure() }
                bitBuffer |= Int(bytes[position]) << bitCount
                position += 1
                bitCount += 8
            }
            let value = bitBuffer & ((1 << count) - 1)
            bitBuffer >>= count
            bitCount -= count
            return value
        }

        mutating func alignToByte() {
            bitBuffer = 0
            bitCount = 0
        }
    }

    /// A canonical Huffman code: counts per length and symbols in code order.
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []

        init(lengths: [Int]) {
            for length in lengths { counts[length] += 1 }
            counts[0] = 0
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<16 { offsets[length] = offsets[length - 1] + counts[length - 1] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (symbol, length) in lengths.enumerated() where length != 0 {
                symbols[offsets[length]] = symbol
                offsets[length] += 1
            }
        }

        func decode(_ reader: inout BitReader) throws -> Int {
            var code = 0
            var first = 0
            var index = 0
            for length in 1..<16 {
                code |= try reader.bits(1)
                let count = counts[length]
                if code - count < first { return symbols[index + (code - first)] }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw Failure()
        }
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    static let fixedLiteral = Huffman(lengths: (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 })
    static let fixedDistance = Huffman(lengths: [Int](repeating: 5, count: 30))

    static func inflateBlock(_ reader: inout BitReader, _ output: inout [UInt8], literal: Huffman, distance: Huffman, limit: Int) throws {
        while true {
            let symbol = try literal.decode(&reader)
            if symbol < 256 {
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let index = symbol - 257
                guard index < lengthBase.count else { throw Failure() }
                let length = lengthBase[index] + (try reader.bits(lengthExtra[index]))
                let code = try distance.decode(&reader)
                guard code < distanceBase.count else { throw Failure() }
                let back = distanceBase[code] + (try reader.bits(distanceExtra[code]))
                guard back <= output.count, output.count + length <= limit else { throw Failure() }
                for _ in 0..<length { output.append(output[output.count - back]) }
            }
        }
    }

    static func dynamicTables(_ reader: inout BitReader) throws -> (Huffman, Huffman) {
        let literals = try reader.bits(5) + 257
        let distances = try reader.bits(5) + 1
        let codeLengthCount = try reader.bits(4) + 4
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for index in 0..<codeLengthCount { codeLengths[order[index]] = try reader.bits(3) }
        let codeLengthCode = Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        while lengths.count < literals + distances {
            let symbol = try codeLengthCode.decode(&reader)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw Failure() }
                lengths += [Int](repeating: previous, count: 3 + (try reader.bits(2)))
            case 17: lengths += [Int](repeating: 0, count: 3 + (try reader.bits(3)))
            default: lengths += [Int](repeating: 0, count: 11 + (try reader.bits(7)))
            }
        }
        guard lengths.count == literals + distances else { throw Failure() }
        return (Huffman(lengths: Array(lengths[0..<literals])), Huffman(lengths: Array(lengths[literals...])))
    }
}
