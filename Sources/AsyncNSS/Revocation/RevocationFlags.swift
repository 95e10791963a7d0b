internal import CNSS

/// The `CERTRevocationFlags` that `CERT_PKIXVerifyCert` checks revocation
/// with, for each way a ``RevocationPolicy`` asks NSS to check.
enum RevocationFlags {
    enum Check {
        /// No revocation check at all.
        case none
        /// Every certificate of the chain against NSS's CRL cache, where
        /// ``RevocationLists`` put the policy's lists: a revoked certificate
        /// fails. A missing list does not: NSS (libpkix) counts a cached list
        /// as fresh only for certificates without a CRL distribution point,
        /// so ``RevocationLists/uncovered(_:)`` checks coverage itself. No network.
        case cachedCRLs
    }

    /// Calls `body` with the flags of `check`, valid during the call.
    static func with<Result>(_ check: Check, _ body: (UnsafePointer<CERTRevocationFlags>) throws -> Result) rethrows -> Result {
        let skip = PRUint64(CERT_REV_M_DO_NOT_TEST_USING_THIS_METHOD)
        var leaf: [PRUint64]
        var chain: [PRUint64]
        var preferred: [CERTRevocationMethodIndex]
        switch check {
        case .none:
            return try body(CERT_GetClassicOCSPDisabledPolicy())
        case .cachedCRLs:
            // Indexed by CERTRevocationMethodIndex: CRL, then OCSP.
            leaf = [PRUint64(CERT_REV_M_TEST_USING_THIS_METHOD | CERT_REV_M_FORBID_NETWORK_FETCHING), skip]
            chain = leaf
            preferred = [cert_revocation_method_crl]
        }
        let independent = PRUint64(CERT_REV_MI_TEST_ALL_LOCAL_INFORMATION_FIRST)
        return try leaf.withUnsafeMutableBufferPointer { leaf in
            try chain.withUnsafeMutableBufferPointer { chain in
                try preferred.withUnsafeMutableBufferPointer { preferred in
                    var flags = CERTRevocationFlags(
                        leafTests: CERTRevocationTests(
                            number_of_defined_methods: UInt32(leaf.count), cert_rev_flags_per_method: leaf.baseAddress,
                            number_of_preferred_methods: UInt32(preferred.count), preferred_methods: preferred.baseAddress,
                            cert_rev_method_independent_flags: independent
                        ),
                        chainTests: CERTRevocationTests(
                            number_of_defined_methods: UInt32(chain.count), cert_rev_flags_per_method: chain.baseAddress,
                            number_of_preferred_methods: UInt32(preferred.count), preferred_methods: preferred.baseAddress,
                            cert_rev_method_independent_flags: independent
                        )
                    )
                    return try body(&flags)
                }
            }
        }
    }
}
