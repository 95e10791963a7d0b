/// The read and write waits on one socket of a poll array. Nearly always
/// one (the connection's reader), held inline: an array per socket would
/// cost every idle connection an allocation of its own.
struct SlotWaits: Sequence {
    typealias Element = (id: PollWaitID, interest: PollInterest)

    private var first: Element?
    private var others: [Element] = []

    init() {}

    var isEmpty: Bool { first == nil }

    mutating func append(_ wait: Element) {
        if first == nil { first = wait } else { others.append(wait) }
    }

    /// Removes the wait `id`; false if it is not here.
    @discardableResult
    mutating func remove(id: PollWaitID) -> Bool {
        if first?.id == id {
            first = others.isEmpty ? nil : others.removeFirst()
            return true
        }
        guard let position = others.firstIndex(where: { $0.id == id }) else { return false }
        others.remove(at: position)
        return true
    }

    mutating func removeAll() {
        first = nil
        others.removeAll()
    }

    func makeIterator() -> Iterator {
        Iterator(first: first, others: others.makeIterator())
    }

    struct Iterator: IteratorProtocol {
        fileprivate var first: Element?
        fileprivate var others: IndexingIterator<[Element]>

        mutating func next() -> Element? {
            if let wait = first {
                first = nil
                return wait
            }
            return others.next()
        }
    }
}
