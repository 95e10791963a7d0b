#if canImport(Glibc)
import Glibc
#endif

/// What `stat` says about a set of files, to notice when one changed: its
/// device, inode, size and modification time. Following symbolic links, so a
/// link switched to a new target (as Kubernetes does with mounted secrets)
/// counts as a change.
struct FileSnapshot: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    /// Each path's entry; `nil` for a path that cannot be read now.
    var entries: [String: Entry?]

    /// Stats every path. It may block on a slow file system: call it on the
    /// blocking pool.
    static func take(_ paths: [String]) -> FileSnapshot {
        var entries: [String: Entry?] = [:]
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                entries[path] = .some(nil)
                continue
            }
            entries[path] = Entry(
                device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                modifiedSeconds: info.st_mtim.tv_sec, modifiedNanoseconds: info.st_mtim.tv_nsec
            )
        }
        return FileSnapshot(entries: entries)
    }

    /// The paths whose entry differs from `earlier`'s, sorted.
    func changedPaths(since earlier: FileSnapshot) -> [String] {
        Set(entries.keys).union(earlier.entries.keys).filter { entries[$0] != earlier.entries[$0] }.sorted()
    }
}
