//! The server's certificate verified the way libpq (psql, psycopg) and Python's `ssl`
//! (asyncpg) verify it: by the system's OpenSSL, against the `sslrootcert` certificates only,
//! with libpq's host name rules.
//!
//! sqlx verifies with rustls/webpki, which decides differently from OpenSSL: it refuses a
//! self-signed CA:TRUE certificate used as the server's own (CaUsedAsEndEntity), an X.509 v1
//! certificate, a certificate without subjectAltName (no fallback to the CN), an expired CA
//! among the roots goes unnoticed, and sqlx adds the Mozilla roots to `sslrootcert`. doctor
//! promises the verdict the application's driver will reach, so the chain goes through
//! `X509_verify_cert` of the same libssl3 and `/etc/ssl/openssl.cnf` psql loads (the security
//! level included: weak keys and SHA-1 signatures fail as they do there). rustls keeps the
//! transport, and its provider checks the handshake signatures first (OpenSSL when ring
//! refuses one); the vendored sqlx-core asks [`factory`] for the verifier
//! (`set_server_cert_verifier`, an aksara patch).
//!
//! The OpenSSL code lives in a shared library of its own (openssl-verifier/, loaded by
//! [`library`] on the first check that needs it): most runs (sockets, TCP, `sslmode=require`)
//! never call OpenSSL and no longer pay for mapping libssl at exec.
//!
//! The typed reason travels back inside rustls's error as a [`Rejection`]
//! (`CertificateError::Other`), and `connect::certificate_failure` reads it by type.

mod library;
#[path = "../../openssl-verifier/src/wire.rs"]
mod wire;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sqlx_core::net::tls::{CertificateInput, ServerCertRequest};

use crate::connect::CertReason;
pub use wire::CertFacts;
use wire::{ChainRequest, ChainVerdict, RefusalKind, SignatureRequest, SignatureVerdict};

/// Install the verifier for every TLS connection of this process (once).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        sqlx_core::net::tls::set_server_cert_verifier(factory);
    });
}

/// Why the certificate was refused, as typed data (the error inside rustls's error).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub reason: CertReason,
    /// OpenSSL's words for the verify result, or libpq's for a name or a missing root file.
    pub message: String,
    /// The certificate the refusal is about, when there is one (boxed: errors stay small).
    pub cert: Option<Box<CertFacts>>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

/// libpq's default root file when `sslrootcert` is not set: `~/.postgresql/root.crt` (from
/// HOME, as libpq 16+ and psycopg's bundled libpq find it; libpq 15 asks the passwd entry,
/// which is the same HOME for a login shell).
pub fn default_root_cert() -> Option<PathBuf> {
    let home = std::env::var_os(crate::envvars::HOME).filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".postgresql").join("root.crt"))
}

/// The hook sqlx-core calls for every handshake. Verifying: the given roots only (libpq loads
/// only that file), or libpq's default file, checked by the OpenSSL library (opened here, so
/// a missing one is said before the handshake). Not verifying (`require` and below without a
/// root certificate): no chain check, as libpq; the handshake signatures are checked either way.
fn factory(
    request: ServerCertRequest<'_>,
) -> Result<Arc<dyn ServerCertVerifier>, Box<dyn std::error::Error + Send + Sync>> {
    if !request.verify_chain {
        return Ok(Arc::new(OpensslVerifier {
            roots: None,
            host: None,
            provider: request.provider,
        }));
    }
    let (pem, source) = match request.root_cert {
        Some(CertificateInput::Inline(pem)) => (pem.clone(), "(inline)".to_string()),
        Some(CertificateInput::File(path)) => (read_root_file(path)?, path.display().to_string()),
        None => {
            let path = default_root_cert().ok_or_else(|| Rejection {
                reason: CertReason::NoRootCert,
                message: "could not get home directory to locate root certificate file".into(),
                cert: None,
            })?;
            (read_root_file(&path)?, path.display().to_string())
        }
    };
    library::get()?;
    Ok(Arc::new(OpensslVerifier {
        roots: Some(Roots { pem, source }),
        host: request.verify_hostname.then(|| request.hostname.to_owned()),
        provider: request.provider,
    }))
}

/// libpq under verify-ca/verify-full (`initialize_SSL`, fe-secure-openssl.c): a root file
/// that is not there is refused in libpq's words. `system` is a file name here, as libpq 15
/// (Debian 12's psql) and asyncpg read it; libpq 16+ reads it as the system's CAs (the hint
/// says so).
fn read_root_file(path: &Path) -> Result<Vec<u8>, Rejection> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Rejection {
            reason: CertReason::NoRootCert,
            message: format!(
                "root certificate file \"{}\" does not exist",
                path.display()
            ),
            cert: None,
        },
        _ => Rejection {
            reason: CertReason::Other,
            message: format!(
                "could not read root certificate file \"{}\": {e}",
                path.display()
            ),
            cert: None,
        },
    })
}

/// The roots of `sslrootcert` as read (PEM), and where they came from.
struct Roots {
    pem: Vec<u8>,
    source: String,
}

struct OpensslVerifier {
    /// None: the chain is not verified (`require` and below, as libpq).
    roots: Option<Roots>,
    /// Some under verify-full: the host name as the URL gives it.
    host: Option<String>,
    /// rustls's provider: it checks the handshake signatures first (see
    /// [`verify_handshake_signature`] for when OpenSSL does).
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for OpensslVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslVerifier")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for OpensslVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let request = ChainRequest {
            roots_pem: roots.pem.clone(),
            roots_source: roots.source.clone(),
            end_entity: end_entity.to_vec(),
            intermediates: intermediates.iter().map(|c| c.to_vec()).collect(),
            host: self.host.clone(),
        };
        let verdict: ChainVerdict = library::get()
            .and_then(|lib| lib.verify_chain(&request))
            .map_err(rejected)?;
        match verdict {
            ChainVerdict::Verified => Ok(ServerCertVerified::assertion()),
            ChainVerdict::Refused(refusal) => Err(rejected(Rejection {
                reason: match refusal.kind {
                    RefusalKind::Chain { verify_code } => reason_of(verify_code),
                    RefusalKind::Name => CertReason::NameMismatch,
                    RefusalKind::Unreadable => CertReason::Other,
                },
                message: refusal.message,
                cert: refusal.cert,
            })),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
            .or_else(|_| verify_handshake_signature(message, cert, dss, false))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
            .or_else(|_| verify_handshake_signature(message, cert, dss, true))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        HANDSHAKE_SCHEMES.to_vec()
    }
}

fn rejected(rejection: Rejection) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejection))))
}

/// The signature schemes offered to the server: those of rustls's ring provider (SHA-1 and
/// SHA-224 are not offered, as OpenSSL 3 does not use them at security level 1 and up).
const HANDSHAKE_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// The handshake signature (the server proving it holds the certificate's key), checked by
/// OpenSSL as libssl checks it, when rustls's provider refused it: ring refuses RSA keys under
/// 2048 bits even where nothing is verified (`sslmode=require`), where psql and asyncpg
/// connect, and webpki cannot read an X.509 v1 certificate. Either library accepts only a
/// valid signature; ring goes first so that a connection that verifies nothing does not open
/// the OpenSSL library at all.
fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let request = SignatureRequest {
        scheme: u16::from(dss.scheme),
        tls13,
        message: message.to_vec(),
        cert: cert.to_vec(),
        signature: dss.signature().to_vec(),
    };
    let verdict = library::get()
        .and_then(|lib| lib.check_signature(&request))
        .map_err(rejected)?;
    match verdict {
        SignatureVerdict::Valid => Ok(HandshakeSignatureValid::assertion()),
        SignatureVerdict::BadSignature => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadSignature,
        )),
        SignatureVerdict::Unadvertised => {
            Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into())
        }
        SignatureVerdict::Unreadable(why) => Err(rejected(Rejection {
            reason: CertReason::Other,
            message: format!("the server's certificate could not be read: {why}"),
            cert: None,
        })),
    }
}

/// OpenSSL's verify result, by its number (`X509_V_ERR_*`), as the reason doctor reports.
pub fn reason_of(code: i32) -> CertReason {
    use wire::verify_codes as v;
    match code {
        v::CERT_HAS_EXPIRED | v::CRL_HAS_EXPIRED => CertReason::Expired,
        v::CERT_NOT_YET_VALID | v::CRL_NOT_YET_VALID => CertReason::NotYetValid,
        v::UNABLE_TO_GET_ISSUER_CERT
        | v::UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | v::UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | v::DEPTH_ZERO_SELF_SIGNED_CERT
        | v::SELF_SIGNED_CERT_IN_CHAIN
        | v::CERT_UNTRUSTED => CertReason::UnknownIssuer,
        v::EE_KEY_TOO_SMALL | v::CA_KEY_TOO_SMALL => CertReason::WeakKey,
        v::CA_MD_TOO_WEAK => CertReason::WeakDigest,
        v::HOSTNAME_MISMATCH | v::IP_ADDRESS_MISMATCH => CertReason::NameMismatch,
        _ => CertReason::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_codes_map_to_reasons() {
        use wire::verify_codes as v;
        assert_eq!(reason_of(v::CERT_HAS_EXPIRED), CertReason::Expired);
        assert_eq!(
            reason_of(v::DEPTH_ZERO_SELF_SIGNED_CERT),
            CertReason::UnknownIssuer
        );
        assert_eq!(reason_of(v::EE_KEY_TOO_SMALL), CertReason::WeakKey);
        assert_eq!(reason_of(v::CA_MD_TOO_WEAK), CertReason::WeakDigest);
        assert_eq!(reason_of(v::INVALID_PURPOSE), CertReason::Other);
    }
}
