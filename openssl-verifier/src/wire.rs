//! The data that crosses the verifier library's C ABI, both ways, as JSON bytes. This one
//! file is compiled into the library and into aksara (`#[path]` in src/tls_verify/mod.rs),
//! so the two sides share the definitions; [`ABI_VERSION`] changes whenever they change,
//! and aksara refuses a library built from another version.

use serde::{Deserialize, Serialize};

/// What `aksara_openssl_abi()` returns; aksara opens only a library that says the same.
pub const ABI_VERSION: u32 = 1;

/// The library's file name (next to the executable, or in `<exe dir>/../lib/aksara/`).
pub const LIBRARY_FILE: &str = "libaksara_openssl.so";

/// A chain to verify: the roots of `sslrootcert` (PEM, as read), the server's certificates
/// (DER, as sent), and under verify-full the host name as the URL gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainRequest {
    pub roots_pem: Vec<u8>,
    /// Where the roots came from, for the message when they cannot be read.
    pub roots_source: String,
    pub end_entity: Vec<u8>,
    pub intermediates: Vec<Vec<u8>>,
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChainVerdict {
    Verified,
    Refused(Refusal),
}

/// A refusal in OpenSSL's or libpq's words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    /// Boxed: errors stay small.
    pub cert: Option<Box<CertFacts>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalKind {
    /// `X509_verify_cert` said no: its result number (`X509_V_ERR_*`).
    Chain { verify_code: i32 },
    /// libpq's host name rules said no (verify-full).
    Name,
    /// The roots or the server's certificates could not be read.
    Unreadable,
}

/// What a certificate in the server's chain says about itself, for the hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    /// The subject, one line (`CN=localhost`).
    pub subject: String,
    /// As OpenSSL prints them: `Jan  1 00:00:00 2020 GMT`.
    pub not_before: String,
    pub not_after: String,
    /// The names libpq compares with the host: every dNSName and iPAddress, then the CN when
    /// no subjectAltName of the host's kind is there.
    pub names: Vec<String>,
    /// 0: the server's own certificate; 1 its issuer, ...
    pub depth: u32,
}

/// A handshake signature rustls's provider refused, for OpenSSL to check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureRequest {
    /// The TLS `SignatureScheme` number.
    pub scheme: u16,
    pub tls13: bool,
    pub message: Vec<u8>,
    /// The server's certificate (DER): its key made the signature.
    pub cert: Vec<u8>,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignatureVerdict {
    Valid,
    /// The signature does not verify, or the key does not fit the scheme.
    BadSignature,
    /// A scheme aksara did not offer (or one that cannot sign this TLS version).
    Unadvertised,
    /// OpenSSL could not read the certificate or run the check: its words.
    Unreadable(String),
}

/// The `X509_V_ERR_*` numbers aksara names reasons after (openssl-sys's values; the
/// library's tests compare them, so aksara itself needs no OpenSSL crate).
pub mod verify_codes {
    pub const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
    pub const CERT_NOT_YET_VALID: i32 = 9;
    pub const CERT_HAS_EXPIRED: i32 = 10;
    pub const CRL_NOT_YET_VALID: i32 = 11;
    pub const CRL_HAS_EXPIRED: i32 = 12;
    pub const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
    pub const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
    pub const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
    pub const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
    // Named by the tests of both sides (a code with no reason of its own).
    #[allow(dead_code)]
    pub const INVALID_PURPOSE: i32 = 26;
    pub const CERT_UNTRUSTED: i32 = 27;
    pub const HOSTNAME_MISMATCH: i32 = 62;
    pub const IP_ADDRESS_MISMATCH: i32 = 64;
    pub const EE_KEY_TOO_SMALL: i32 = 66;
    pub const CA_KEY_TOO_SMALL: i32 = 67;
    pub const CA_MD_TOO_WEAK: i32 = 68;
}
