// A correct program that ThreadSanitizer reports on Linux (Swift 6.3.1): four
// threads add to a counter behind Synchronization.Mutex. Contended locks go
// through _lockSlow/_unlockSlow in the uninstrumented libswiftSynchronization.so,
// so TSan misses the hand-over and reports a "Swift access race".
//
//   swiftc -sanitize=thread -g mutex.swift -o /tmp/mutex && /tmp/mutex
//
// Prints 40000 and, in most runs (the slow path needs real contention), a race
// report; on a 2-core machine 3 runs in 5 showed one. Sources/AsyncNSS/Support/SanitizerMutex.swift
// is the TSan-only replacement.
import Foundation
import Synchronization

final class Box: @unchecked Sendable {   // @unchecked: `value` is touched only under `mutex`.
    let mutex = Mutex<Void>(())
    var value = 0
}

let box = Box()
let group = DispatchGroup()
for _ in 0..<4 {
    group.enter()
    Thread.detachNewThread {
        for _ in 0..<10_000 { box.mutex.withLock { _ in box.value += 1 } }
        group.leave()
    }
}
group.wait()
print(box.value)
