// A correct program that ThreadSanitizer reports on Linux (Swift 6.3.1): a
// plain thread writes a value and then resumes a continuation; the resumed
// task reads the value. TSan sees no edge from resume to the resumed task,
// and also reports the task frame that the next withUnsafeContinuation reuses
// (swiftlang/swift#57803).
//
//   swiftc -parse-as-library -sanitize=thread -g continuation.swift -o /tmp/continuation && /tmp/continuation
//
// Prints 20100 and data-race reports. Sources/AsyncNSS/Support/SanitizerContinuation.swift
// is the TSan-only workaround.
import Foundation

final class Box: @unchecked Sendable {   // @unchecked: written before resume, read after it.
    var value = 0
}

@main struct Main {
    static func main() async {
        var total = 0
        for i in 0..<200 {
            let box = Box()
            let got: Int = await withUnsafeContinuation { (continuation: UnsafeContinuation<Int, Never>) in
                Thread.detachNewThread {
                    box.value = i
                    continuation.resume(returning: 1)
                }
            }
            total += box.value + got
        }
        print(total)
    }
}
