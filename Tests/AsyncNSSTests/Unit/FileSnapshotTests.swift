@testable import AsyncNSS
import Foundation
import Testing

@Suite("FileSnapshot: noticing changed files")
struct FileSnapshotTests {
    @Test("a rewrite, a rename over the file, a switched symlink and a deletion each count as a change; nothing else does")
    func changes() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("a.pem", "one")
        let other = try directory.write("b.pem", "two")
        let link = directory.file("link.pem")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)
        let paths = [file, link]

        let first = FileSnapshot.take(paths)
        #expect(FileSnapshot.take(paths).changedPaths(since: first).isEmpty)

        _ = try directory.write("a.pem", "three, longer")
        let rewritten = FileSnapshot.take(paths)
        #expect(rewritten.changedPaths(since: first) == [file, link].sorted())

        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: other)
        let relinked = FileSnapshot.take(paths)
        #expect(relinked.changedPaths(since: rewritten) == [link])

        try FileManager.default.removeItem(atPath: file)
        let deleted = FileSnapshot.take(paths)
        #expect(deleted.changedPaths(since: relinked) == [file])
        #expect(deleted.entries[file] == .some(nil))
        #expect(FileSnapshot.take(paths).changedPaths(since: deleted).isEmpty, "a file that stays missing is no change")
    }
}
