internal import CNSS

extension TLSConnection {
    /// Derives keying material from the connection's secrets (RFC 5705 for
    /// TLS 1.2, RFC 8446 §7.5 for TLS 1.3). Both ends get the same bytes for
    /// the same label, context and length.
    ///
    /// - Parameters:
    ///   - label: The exporter label, for example `EXPERIMENTAL-my-protocol`.
    ///   - context: Optional context bytes; `nil` and an empty context differ.
    ///   - length: How many bytes to derive.
    public func exportKeyingMaterial(label: String, context: [UInt8]? = nil, length: Int) throws -> [UInt8] {
        let operation = "exporting keying material on \(remoteAddress)"
        guard length > 0, length <= 0xFFFF, !label.isEmpty else {
            throw TLSError(kind: .invalidConfiguration, operation: operation, message: "the label must not be empty and the length must be 1 to 65535 bytes")
        }
        let labelLength = label.utf8.count
        let contextBytes = context ?? []
        var output = [UInt8](repeating: 0, count: length)
        try socket.withFD(operation) { fd in
            let status = label.withCString { labelPointer in
                contextBytes.withUnsafeBufferPointer { contextBuffer in
                    output.withUnsafeMutableBufferPointer { outputBuffer in
                        SSL_ExportKeyingMaterial(
                            fd, labelPointer, UInt32(labelLength),
                            context == nil ? PR_FALSE : PR_TRUE, contextBuffer.baseAddress, UInt32(contextBuffer.count),
                            outputBuffer.baseAddress, UInt32(outputBuffer.count)
                        )
                    }
                }
            }
            guard status == SECSuccess else { throw TLSError.fromLastNSSError(operation) }
        }
        return output
    }
}
