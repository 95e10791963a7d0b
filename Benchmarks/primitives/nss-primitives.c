/*
 * nss-primitives: what NSS's own cryptography costs per operation, through
 * the same PKCS#11 calls libssl makes during a TLS 1.3 handshake. It puts a
 * number on the cryptographic share of a handshake, so that the rest of
 * selfserv's (and nss-tls serve's) CPU per handshake can be attributed to
 * the TLS state machine and to the framework around it.
 *
 *   Benchmarks/primitives/run.sh [SECONDS-PER-PRIMITIVE]
 *
 * Each primitive runs in a loop for the given time (default 1 s) and prints
 * microseconds per operation (thread CPU time, so other processes on the
 * machine do not inflate it).
 */
#include <nss.h>
#include <pk11pub.h>
#include <keyhi.h>
#include <secoid.h>
#include <secerr.h>
#include <prerror.h>
#include <pkcs11t.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds = 1.0;

static double thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what) {
    fprintf(stderr, "%s failed: %s\n", what, PR_ErrorToName(PR_GetError()));
    exit(1);
}

/* Runs `op` repeatedly for `seconds` of thread CPU time; prints µs per call. */
#define MEASURE(name, op)                                                      \
    do {                                                                       \
        long count = 0;                                                        \
        double start = thread_cpu_now(), now = start;                          \
        while (now - start < seconds) {                                        \
            for (int i_ = 0; i_ < 16; i_++) { op; }                            \
            count += 16;                                                       \
            now = thread_cpu_now();                                            \
        }                                                                      \
        printf("%-44s %10.2f us  (%ld ops)\n", name, (now - start) * 1e6 / count, count); \
    } while (0)

static SECKEYECParams curve_params(SECOidTag tag) {
    SECOidData *oid = SECOID_FindOIDByTag(tag);
    if (!oid) fail("SECOID_FindOIDByTag");
    SECKEYECParams params = { siBuffer, NULL, 0 };
    params.data = malloc(oid->oid.len + 2);
    params.data[0] = 0x06; /* SEC_ASN1_OBJECT_ID */
    params.data[1] = (unsigned char)oid->oid.len;
    memcpy(params.data + 2, oid->oid.data, oid->oid.len);
    params.len = oid->oid.len + 2;
    return params;
}

/* A key share as libssl makes one (ssl_CreateECDHEphemeralKeyPair): a
 * session key pair usable for derivation only. */
static SECKEYPrivateKey *generate(SECKEYECParams *params, SECKEYPublicKey **pub) {
    SECKEYPrivateKey *key = SECKEY_CreateECPrivateKey(params, pub, NULL);
    if (!key) fail("SECKEY_CreateECPrivateKey");
    return key;
}

/* A signing key (the server certificate's key). */
static SECKEYPrivateKey *generate_signing(PK11SlotInfo *slot, SECKEYECParams *params, SECKEYPublicKey **pub) {
    SECKEYPrivateKey *key = PK11_GenerateKeyPair(slot, CKM_EC_KEY_PAIR_GEN, params, pub, PR_FALSE, PR_FALSE, NULL);
    if (!key) fail("PK11_GenerateKeyPair");
    return key;
}

static void key_exchange(const char *curve, SECOidTag tag) {
    SECKEYECParams params = curve_params(tag);
    SECKEYPublicKey *peerPub = NULL;
    SECKEYPrivateKey *peer = generate(&params, &peerPub);
    char name[64];

    snprintf(name, sizeof name, "%s key share (key pair generation)", curve);
    MEASURE(name, {
        SECKEYPublicKey *pub = NULL;
        SECKEYPrivateKey *key = generate(&params, &pub);
        SECKEY_DestroyPrivateKey(key);
        SECKEY_DestroyPublicKey(pub);
    });

    SECKEYPublicKey *ownPub = NULL;
    SECKEYPrivateKey *own = generate(&params, &ownPub);
    snprintf(name, sizeof name, "%s shared secret (ECDH derive)", curve);
    MEASURE(name, {
        PK11SymKey *secret = PK11_PubDeriveWithKDF(own, peerPub, PR_FALSE, NULL, NULL, CKM_ECDH1_DERIVE,
                                                   CKM_HKDF_DERIVE, CKA_DERIVE, 0, CKD_NULL, NULL, NULL);
        if (!secret) fail("PK11_PubDeriveWithKDF");
        PK11_FreeSymKey(secret);
    });
    SECKEY_DestroyPrivateKey(own);
    SECKEY_DestroyPublicKey(ownPub);
    SECKEY_DestroyPrivateKey(peer);
    SECKEY_DestroyPublicKey(peerPub);
    free(params.data);
}

static void signatures(PK11SlotInfo *slot) {
    SECKEYECParams params = curve_params(SEC_OID_ANSIX962_EC_PRIME256V1);
    SECKEYPublicKey *pub = NULL;
    SECKEYPrivateKey *key = generate_signing(slot, &params, &pub);
    unsigned char digest[32];
    memset(digest, 0x5a, sizeof digest);
    SECItem hash = { siBuffer, digest, sizeof digest };
    unsigned char signatureBytes[72];
    SECItem signature = { siBuffer, signatureBytes, (unsigned)PK11_SignatureLen(key) };
    MEASURE("ECDSA P-256 sign (server CertificateVerify)", {
        signature.len = (unsigned)PK11_SignatureLen(key);
        if (PK11_Sign(key, &signature, &hash) != SECSuccess) fail("PK11_Sign");
    });
    MEASURE("ECDSA P-256 verify (client)", {
        if (PK11_Verify(pub, &signature, &hash, NULL) != SECSuccess) fail("PK11_Verify");
    });
    SECKEY_DestroyPrivateKey(key);
    SECKEY_DestroyPublicKey(pub);
    free(params.data);
}

/* HKDF-Extract and HKDF-Expand as tls13hkdf.c calls them: PK11_Derive with
 * CKM_HKDF_DERIVE, a new symmetric key object each time. */
static void hkdf(PK11SlotInfo *slot) {
    unsigned char zeros[32] = { 0 };
    SECItem zeroItem = { siBuffer, zeros, sizeof zeros };
    PK11SymKey *ikm = PK11_ImportDataKey(slot, CKM_HKDF_DERIVE, PK11_OriginUnwrap, CKA_DERIVE, &zeroItem, NULL);
    if (!ikm) fail("PK11_ImportDataKey");

    CK_HKDF_PARAMS extract = { CK_TRUE, CK_FALSE, CKM_SHA256, CKF_HKDF_SALT_NULL, NULL, 0, CK_INVALID_HANDLE, NULL, 0 };
    SECItem extractItem = { siBuffer, (unsigned char *)&extract, sizeof extract };
    MEASURE("HKDF-Extract, SHA-256 (PK11_Derive)", {
        PK11SymKey *prk = PK11_Derive(ikm, CKM_HKDF_DERIVE, &extractItem, CKM_HKDF_DERIVE, CKA_DERIVE, 0);
        if (!prk) fail("HKDF extract");
        PK11_FreeSymKey(prk);
    });

    PK11SymKey *prk = PK11_Derive(ikm, CKM_HKDF_DERIVE, &extractItem, CKM_HKDF_DERIVE, CKA_DERIVE, 0);
    if (!prk) fail("HKDF extract");
    unsigned char label[] = "\x00\x20\x0dtls13 c hs traffic\x20"
                            "0123456789abcdef0123456789abcdef";
    CK_HKDF_PARAMS expand = { CK_FALSE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_NULL, NULL, 0, CK_INVALID_HANDLE, label, sizeof label - 1 };
    SECItem expandItem = { siBuffer, (unsigned char *)&expand, sizeof expand };
    MEASURE("HKDF-Expand-Label to a 32-byte secret", {
        PK11SymKey *secret = PK11_Derive(prk, CKM_HKDF_DERIVE, &expandItem, CKM_HKDF_DERIVE, CKA_DERIVE, 32);
        if (!secret) fail("HKDF expand");
        PK11_FreeSymKey(secret);
    });
    PK11_FreeSymKey(prk);
    PK11_FreeSymKey(ikm);
}

static void aead(PK11SlotInfo *slot) {
    unsigned char keyBytes[16];
    memset(keyBytes, 7, sizeof keyBytes);
    SECItem keyItem = { siBuffer, keyBytes, sizeof keyBytes };
    PK11SymKey *key = PK11_ImportSymKey(slot, CKM_AES_GCM, PK11_OriginUnwrap, CKA_ENCRYPT, &keyItem, NULL);
    if (!key) fail("PK11_ImportSymKey");
    unsigned char iv[12] = { 0 }, aad[13] = { 0 };
    CK_GCM_PARAMS gcm = { iv, sizeof iv, sizeof iv * 8, aad, sizeof aad, 128 };
    SECItem gcmItem = { siBuffer, (unsigned char *)&gcm, sizeof gcm };
    static unsigned char in[16384], out[16384 + 16];
    unsigned int outLen = 0;
    memset(in, 1, sizeof in);
    MEASURE("AES-128-GCM seal, 64-byte record", {
        if (PK11_Encrypt(key, CKM_AES_GCM, &gcmItem, out, &outLen, sizeof out, in, 64) != SECSuccess) fail("PK11_Encrypt");
    });
    MEASURE("AES-128-GCM seal, 16 KiB record", {
        if (PK11_Encrypt(key, CKM_AES_GCM, &gcmItem, out, &outLen, sizeof out, in, sizeof in) != SECSuccess) fail("PK11_Encrypt");
    });
    PK11_FreeSymKey(key);
}

static void hashing(void) {
    static unsigned char in[1024];
    unsigned char digest[32];
    memset(in, 3, sizeof in);
    MEASURE("SHA-256 of 1 KiB (transcript hash)", {
        if (PK11_HashBuf(SEC_OID_SHA256, digest, in, sizeof in) != SECSuccess) fail("PK11_HashBuf");
    });
}

int main(int argc, char **argv) {
    if (argc > 1) seconds = atof(argv[1]);
    if (NSS_NoDB_Init(NULL) != SECSuccess) fail("NSS_NoDB_Init");
    PK11SlotInfo *slot = PK11_GetInternalSlot();
    if (!slot) fail("PK11_GetInternalSlot");
    printf("NSS %s, %.1f s of thread CPU per primitive\n", NSS_GetVersion(), seconds);
    key_exchange("X25519", SEC_OID_CURVE25519);
    key_exchange("P-256", SEC_OID_ANSIX962_EC_PRIME256V1);
    signatures(slot);
    hkdf(slot);
    aead(slot);
    hashing();
    PK11_FreeSlot(slot);
    if (NSS_Shutdown() != SECSuccess) fail("NSS_Shutdown");
    return 0;
}
