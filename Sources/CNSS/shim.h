// The C surface of NSS and NSPR that AsyncNSS uses.
//
// Only `static inline` wrappers for what Swift cannot import belong here
// (function-like macros, experimental entry points). Each one says why it exists.
#ifndef CNSS_SHIM_H
#define CNSS_SHIM_H

#include <nspr.h>
#include <prio.h>
#include <prerror.h>
#include <prnetdb.h>
#include <private/pprio.h>
#include <nss.h>
#include <ssl.h>
#include <sslerr.h>
#include <sslproto.h>
#include <sslexp.h>
#include <secerr.h>
#include <secmod.h>
#include <pk11pub.h>
#include <cert.h>
#include <certdb.h>
#include <keyhi.h>
#include <cryptohi.h>
#include <secder.h>
#include <secoid.h>
#include <nssb64.h>
#include <pkcs11uri.h>
#include <secasn1.h>
#include <ocsp.h>

// CERT_LIST_HEAD / CERT_LIST_NEXT / CERT_LIST_END are function-like macros.
static inline CERTCertListNode *_Nullable cnss_cert_list_head(CERTCertList *_Nonnull list) {
    return CERT_LIST_HEAD(list);
}
static inline CERTCertListNode *_Nullable cnss_cert_list_next(CERTCertListNode *_Nonnull node) {
    return CERT_LIST_NEXT(node);
}
static inline int cnss_cert_list_end(CERTCertListNode *_Nonnull node, CERTCertList *_Nonnull list) {
    return CERT_LIST_END(node, list);
}

// PR_INIT_CLIST / PR_APPEND_LINK are macros; the SAN list of a self-signed
// certificate is a circular PRCList of CERTGeneralName.
static inline void cnss_general_name_list_init(CERTGeneralName *_Nonnull head) {
    PR_INIT_CLIST(&head->l);
}
static inline void cnss_general_name_list_append(CERTGeneralName *_Nonnull head,
                                                 CERTGeneralName *_Nonnull name) {
    PR_APPEND_LINK(&name->l, &head->l);
}

// PRIVKEY_LIST_HEAD / PRIVKEY_LIST_NEXT / PRIVKEY_LIST_END are function-like
// macros over the PRCList of a SECKEYPrivateKeyList (PK11_ListPrivKeysInSlot).
static inline SECKEYPrivateKeyListNode *_Nonnull cnss_private_key_list_head(SECKEYPrivateKeyList *_Nonnull list) {
    return PRIVKEY_LIST_HEAD(list);
}
static inline SECKEYPrivateKeyListNode *_Nonnull cnss_private_key_list_next(SECKEYPrivateKeyListNode *_Nonnull node) {
    return PRIVKEY_LIST_NEXT(node);
}
static inline int cnss_private_key_list_end(SECKEYPrivateKeyListNode *_Nonnull node, SECKEYPrivateKeyList *_Nonnull list) {
    return PRIVKEY_LIST_END(node, list);
}

// PR_WOULD_BLOCK_ERROR and friends import as `Int`; these give PRErrorCode values.
static inline PRErrorCode cnss_would_block_error(void) { return PR_WOULD_BLOCK_ERROR; }
static inline PRErrorCode cnss_in_progress_error(void) { return PR_IN_PROGRESS_ERROR; }
static inline PRIntervalTime cnss_interval_no_timeout(void) { return PR_INTERVAL_NO_TIMEOUT; }

// SSL_KeyUpdate and SSL_SendCertificateRequest are macros over
// SSL_GetExperimentalAPI; Swift cannot import them.
static inline SECStatus cnss_key_update(PRFileDesc *_Nonnull fd, PRBool requestUpdate) {
    return SSL_KeyUpdate(fd, requestUpdate);
}
static inline SECStatus cnss_send_certificate_request(PRFileDesc *_Nonnull fd) {
    return SSL_SendCertificateRequest(fd);
}
// SSL_SecretCallback is a macro over SSL_GetExperimentalAPI too.
static inline SECStatus cnss_secret_callback(PRFileDesc *_Nonnull fd, SSLSecretCallback _Nullable callback, void *_Nullable argument) {
    return SSL_SecretCallback(fd, callback, argument);
}

// SECKEY_PrivateKeyInfoTemplate is an array of unknown size, which Swift
// cannot import: the PKCS#8 DER of an extractable private key, in `der`
// (free it with SECITEM_ZfreeItem(der, PR_FALSE)).
static inline SECStatus cnss_export_private_key_der(SECKEYPrivateKey *_Nonnull key, SECItem *_Nonnull der) {
    SECKEYPrivateKeyInfo *info = PK11_ExportPrivKeyInfo(key, NULL);
    if (!info) return SECFailure;
    SECItem *encoded = SEC_ASN1EncodeItem(NULL, der, info, SECKEY_PrivateKeyInfoTemplate);
    SECKEY_DestroyPrivateKeyInfo(info, PR_TRUE);
    return encoded ? SECSuccess : SECFailure;
}

// SECOID_AlgorithmIDTemplate is an array of unknown size, which Swift cannot import.
static inline SECStatus cnss_decode_algorithm_id(PLArenaPool *_Nonnull arena, SECAlgorithmID *_Nonnull algorithm, const SECItem *_Nonnull der) {
    return SEC_QuickDERDecodeItem(arena, algorithm, SECOID_AlgorithmIDTemplate, der);
}

// Encrypted Client Hello: NSS's experimental API, reached through
// SSL_GetExperimentalAPI by these macros.
static inline SECStatus cnss_set_server_ech_configs(PRFileDesc *_Nonnull fd, const SECKEYPublicKey *_Nonnull publicKey, const SECKEYPrivateKey *_Nonnull privateKey, const PRUint8 *_Nonnull list, unsigned int length) {
    return SSL_SetServerEchConfigs(fd, publicKey, privateKey, list, length);
}
static inline SECStatus cnss_set_client_ech_configs(PRFileDesc *_Nonnull fd, const PRUint8 *_Nonnull list, unsigned int length) {
    return SSL_SetClientEchConfigs(fd, list, length);
}
static inline SECStatus cnss_get_ech_retry_configs(PRFileDesc *_Nonnull fd, SECItem *_Nonnull retryConfigs) {
    return SSL_GetEchRetryConfigs(fd, retryConfigs);
}
/// An ECHConfigList for an X25519 key, offering HKDF-SHA256 with AES-128-GCM and ChaCha20-Poly1305.
static inline SECStatus cnss_encode_ech_config(PRUint8 configId, const char *_Nonnull publicName, const SECKEYPublicKey *_Nonnull publicKey, PRUint8 *_Nonnull out, unsigned int *_Nonnull length, unsigned int capacity) {
    HpkeSymmetricSuite suites[] = {
        { HpkeKdfHkdfSha256, HpkeAeadAes128Gcm },
        { HpkeKdfHkdfSha256, HpkeAeadChaCha20Poly1305 },
    };
    return SSL_EncodeEchConfigId(configId, publicName, 100, HpkeDhKemX25519Sha256, publicKey, suites, 2, out, length, capacity);
}

// TLS 1.3 early data (0-RTT): NSS's experimental anti-replay API.
static inline SSLAntiReplayContext *_Nullable cnss_create_anti_replay_context(PRTime window) {
    SSLAntiReplayContext *context = NULL;
    // 7 hashes over 2^14-bit Bloom filters: NSS selfserv's parameters.
    if (SSL_CreateAntiReplayContext(PR_Now(), window, 7, 14, &context) != SECSuccess) return NULL;
    return context;
}
static inline SECStatus cnss_release_anti_replay_context(SSLAntiReplayContext *_Nonnull context) {
    return SSL_ReleaseAntiReplayContext(context);
}
static inline SECStatus cnss_set_anti_replay_context(PRFileDesc *_Nonnull fd, SSLAntiReplayContext *_Nonnull context) {
    return SSL_SetAntiReplayContext(fd, context);
}
static inline SECStatus cnss_set_max_early_data_size(PRFileDesc *_Nonnull fd, PRUint32 size) {
    return SSL_SetMaxEarlyDataSize(fd, size);
}

// pipe2(2) is a GNU extension, hidden from Swift's Glibc module (built without
// _GNU_SOURCE). A pipe that is close-on-exec from the start cannot leak into a
// process that another thread spawns at the same moment.
#include <fcntl.h>
static inline int cnss_pipe_cloexec(int ends[_Nonnull 2]) {
    extern int pipe2(int *ends, int flags);
    return pipe2(ends, O_CLOEXEC);
}

// An event loop's wakeup: an eventfd, close-on-exec and nonblocking from the
// start. (NSPR's pollable event is a pipe whose ends it makes without
// FD_CLOEXEC, so every process a server started held both.) Setting adds to
// its counter; consuming reads the counter back to zero; neither blocks.
#include <sys/eventfd.h>
#include <stdint.h>
#include <unistd.h>
static inline int cnss_wakeup_open(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}
static inline void cnss_wakeup_set(int fd) {
    uint64_t one = 1;
    // Fails only when the counter would overflow, and then it is already set.
    (void)!write(fd, &one, sizeof one);
}
static inline void cnss_wakeup_consume(int fd) {
    uint64_t count;
    // EAGAIN when nothing was set: nothing to consume.
    (void)!read(fd, &count, sizeof count);
}

#endif
