internal import CNSS
import Synchronization

/// NSS databases and PKCS#11 modules opened at run time, each once per runtime.
///
/// Opening a database or loading a module may block (disk, a device), so
/// callers run these methods on the ``BlockingPool``.
final class TokenModules: Sendable {
    private struct State {
        /// Slot of each opened database, by `sql:` directory.
        var databases: [String: (slot: OpaquePointer, tokenName: String)] = [:]
        var systemRoots: UnsafeMutablePointer<SECMODModule>? = nil
    }

    private let state = Locked(State())

    /// Opens the NSS database at `directory` as an extra token, and returns the
    /// token name to prefix nicknames with (`token:nickname`).
    func openDatabase(_ directory: String) throws -> String {
        let location = Self.normalised(directory)
        return try state.withLock { state in
            if let open = state.databases[location] { return open.tokenName }
            let tokenName = "AsyncNSS database \(state.databases.count + 1)"
            let escaped = String(location.filter { $0 != "'" })
            let spec = "configdir='\(escaped)' tokenDescription='\(tokenName)' flags=readOnly"
            guard let slot = SECMOD_OpenUserDB(spec) else {
                throw TLSError.fromLastNSSError("opening the NSS database \(location)")
                    .withHint("check that the directory exists and holds cert9.db and key4.db (certutil -N -d \(location))")
            }
            state.databases[location] = (slot, tokenName)
            return tokenName
        }
    }

    /// The slot of a database opened with ``openDatabase(_:)``.
    func withDatabaseSlot<Result>(_ directory: String, _ body: (OpaquePointer) throws -> Result) throws -> Result? {
        let location = Self.normalised(directory)
        return try state.withLock { state in
            guard let open = state.databases[location] else { return nil }
            return try body(open.slot)
        }
    }

    /// Loads the builtin roots module (`libnssckbi.so`: Mozilla's root list as
    /// the system's NSS ships it; some distributions link it to p11-kit).
    func loadSystemRoots() throws {
        try state.withLock { state in
            if state.systemRoots != nil { return }
            let spec = "name=\"AsyncNSS system roots\" library=\"libnssckbi.so\""
            guard let module = spec.withCString({ SECMOD_LoadUserModule(UnsafeMutablePointer(mutating: $0), nil, PR_FALSE) }),
                  module.pointee.loaded != 0 else {
                throw TLSError.fromLastNSSError("loading the system trust roots (libnssckbi.so)")
                    .withHint("install the libnss3 package, or configure explicit trust anchors")
            }
            state.systemRoots = module
        }
    }

    /// Closes every database and unloads every module.
    func closeAll() {
        state.withLock { state in
            for (_, open) in state.databases {
                SECMOD_CloseUserDB(open.slot)
                PK11_FreeSlot(open.slot)
            }
            state.databases.removeAll()
            if let module = state.systemRoots {
                SECMOD_UnloadUserModule(module)
                SECMOD_DestroyModule(module)
                state.systemRoots = nil
            }
        }
    }

    /// `DIR` and `sql:DIR` name the same database.
    static func normalised(_ directory: String) -> String {
        directory.hasPrefix("sql:") || directory.hasPrefix("dbm:") ? directory : "sql:\(directory)"
    }
}

extension TLSError {
    /// Appends advice on what to do about the error.
    func withHint(_ hint: String) -> TLSError {
        var copy = self
        copy.message += " (\(hint))"
        return copy
    }
}
