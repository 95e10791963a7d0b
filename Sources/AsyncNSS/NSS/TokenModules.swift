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
        /// PKCS#11 modules loaded by ``loadModule(_:)``, by library path.
        var modules: [String: UnsafeMutablePointer<SECMODModule>] = [:]
    }

    private let state = Locked(State())
    /// Who logged in to which token; see ``TokenLogins``.
    let logins = TokenLogins()

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
            guard let module = Self.loadLibrary("libnssckbi.so", name: "AsyncNSS system roots") else {
                throw TLSError.fromLastNSSError("loading the system trust roots (libnssckbi.so)")
                    .withHint("install the libnss3 package, or configure explicit trust anchors")
            }
            state.systemRoots = module
        }
    }

    /// Loads the PKCS#11 module (a shared library such as SoftHSM2's
    /// `libsofthsm2.so` or an HSM vendor's) at `path`, once per runtime, and
    /// runs `body` with the slots it has.
    func withModuleSlots<Result>(_ path: String, _ body: ([OpaquePointer]) throws -> Result) throws -> Result {
        try state.withLock { state in
            let module: UnsafeMutablePointer<SECMODModule>
            if let loaded = state.modules[path] {
                module = loaded
            } else {
                module = try Self.loadModule(path, name: "AsyncNSS PKCS#11 module \(state.modules.count + 1)")
                state.modules[path] = module
            }
            let slots = UnsafeBufferPointer(start: module.pointee.slots, count: Int(module.pointee.slotCount))
            return try body(slots.compactMap { $0 })
        }
    }

    private static func loadModule(_ path: String, name: String) throws -> UnsafeMutablePointer<SECMODModule> {
        let operation = "loading the PKCS#11 module \(path)"
        guard !path.contains("\""), !path.contains("\\") else {
            throw TLSError(kind: .invalidIdentity, operation: operation, message: "the module path must not contain quotes or backslashes")
        }
        guard let module = loadLibrary(path, name: name) else {
            throw TLSError.fromLastNSSError(operation).withHint("check that \(path) exists and is a PKCS#11 library, and that its configuration (SOFTHSM2_CONF for SoftHSM2) is readable").asInvalidIdentity
        }
        return module
    }

    /// Loads the module in the shared library `library` under `name`; nil
    /// (NSS's error set, nothing left behind) when it does not load.
    private static func loadLibrary(_ library: String, name: String) -> UnsafeMutablePointer<SECMODModule>? {
        let spec = "name=\"\(name)\" library=\"\(library)\""
        guard let module = spec.withCString({ SECMOD_LoadUserModule(UnsafeMutablePointer(mutating: $0), nil, PR_FALSE) }) else {
            return nil
        }
        guard module.pointee.loaded != 0 else {
            SECMOD_DestroyModule(module)
            return nil
        }
        return module
    }

    private static func unload(_ module: UnsafeMutablePointer<SECMODModule>) {
        SECMOD_UnloadUserModule(module)
        SECMOD_DestroyModule(module)
    }

    /// Closes every database and unloads every module.
    func closeAll() {
        state.withLock { state in
            for (_, open) in state.databases {
                SECMOD_CloseUserDB(open.slot)
                PK11_FreeSlot(open.slot)
            }
            state.databases.removeAll()
            state.modules.values.forEach(Self.unload)
            state.modules.removeAll()
            logins.forgetAll()
            state.systemRoots.map(Self.unload)
            state.systemRoots = nil
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

    /// The same error, as a failure to load an identity; the NSS code stays.
    var asInvalidIdentity: TLSError {
        var copy = self
        copy.kind = .invalidIdentity
        return copy
    }
}
